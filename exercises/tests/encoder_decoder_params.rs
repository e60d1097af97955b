// Compiles exercises/starters/encoder_decoder_params.rs into this test (the
// solution with --features solutions).
exercises::exercise!(encoder_decoder_params);

use transformer::{Config, EncoderDecoder, ParamStore, PositionKind};

/// The number of parameters the library's encoder-decoder really creates.
fn instantiated(cfg: &Config) -> usize {
    let store = ParamStore::new(0);
    EncoderDecoder::new(cfg, store.vb().pp("ed")).unwrap();
    store.num_params()
}

fn small() -> Config {
    Config {
        vocab_size: 50,
        d_model: 16,
        n_heads: 4,
        n_kv_heads: 4,
        d_ff: 40,
        n_layers: 2,
        max_len: 12,
        positions: PositionKind::Learned,
        tie_embeddings: false,
        kernels: Default::default(),
    }
}

#[test]
fn a_small_model_with_multi_head_attention() {
    let cfg = small();
    assert_eq!(encoder_decoder_params(&cfg), instantiated(&cfg));
}

#[test]
fn tied_embeddings_and_sinusoidal_positions_remove_parameters() {
    for (tie, positions) in [
        (true, PositionKind::Learned),
        (false, PositionKind::Sinusoidal),
        (true, PositionKind::Sinusoidal),
    ] {
        let cfg = Config { tie_embeddings: tie, positions, ..small() };
        assert_eq!(
            encoder_decoder_params(&cfg),
            instantiated(&cfg),
            "tied: {tie}, {positions:?}"
        );
    }
}

#[test]
fn grouped_and_multi_query_attention_shrink_keys_and_values() {
    for n_kv_heads in [1, 2] {
        let cfg = Config { n_kv_heads, ..small() };
        assert_eq!(
            encoder_decoder_params(&cfg),
            instantiated(&cfg),
            "n_kv_heads = {n_kv_heads}"
        );
    }
}

#[test]
fn depth_and_width() {
    for (n_layers, d_model, d_ff) in [(1, 8, 8), (3, 24, 96), (4, 32, 64)] {
        let cfg = Config {
            n_layers,
            d_model,
            d_ff,
            n_heads: 2,
            n_kv_heads: 2,
            ..small()
        };
        assert_eq!(encoder_decoder_params(&cfg), instantiated(&cfg), "{cfg:?}");
    }
}
