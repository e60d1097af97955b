// Compiles exercises/starters/pair_flops.rs into this test (the solution with
// --features solutions).
exercises::exercise!(pair_flops);

use candle_core::Tensor;
use transformer::{
    Config, DecoderOnly, EncoderDecoder, MaskKind, ParamStore, PositionKind, flops,
};

fn ids(n: usize, vocab: usize) -> Tensor {
    let v: Vec<u32> = (0..n).map(|i| ((7 * i + 3) % vocab) as u32).collect();
    Tensor::from_vec(v, (1, n), &transformer::DEVICE).unwrap()
}

fn config(n_layers: usize, n_kv_heads: usize) -> Config {
    Config {
        vocab_size: 60,
        d_model: 32,
        n_heads: 4,
        n_kv_heads,
        d_ff: 80,
        n_layers,
        max_len: 64,
        positions: PositionKind::Learned,
        tie_embeddings: true,
        kernels: Default::default(),
    }
}

/// What the library's models really multiply on one pair.
fn counted(cfg: &Config, n: usize, m: usize) -> (u64, u64) {
    let s = ParamStore::new(0);
    let dec = DecoderOnly::new(cfg, s.vb().pp("dec")).unwrap();
    let (_, d) = flops::count(|| {
        dec.forward(&ids(n + m - 1, cfg.vocab_size), &MaskKind::prefix(n)).unwrap()
    });
    let s = ParamStore::new(0);
    let ed = EncoderDecoder::new(cfg, s.vb().pp("ed")).unwrap();
    let (_, e) = flops::count(|| {
        ed.forward(&ids(n, cfg.vocab_size), &ids(m, cfg.vocab_size)).unwrap()
    });
    (d, e)
}

/// Pairs of a few lengths, the reader's count against the models' (`which` picks
/// the decoder's or the encoder-decoder's from [`counted`]).
fn check_pairs(
    yours: fn(&Config, usize, usize) -> u64,
    which: fn((u64, u64)) -> u64,
) {
    let cfg = config(2, 4);
    for (n, m) in [(5, 3), (1, 1), (12, 20)] {
        assert_eq!(
            yours(&cfg, n, m),
            which(counted(&cfg, n, m)),
            "n = {n}, m = {m}"
        );
    }
}

#[test]
fn the_decoder_on_one_pair() {
    check_pairs(decoder_pair_flops, |(d, _)| d);
}

#[test]
fn the_encoder_decoder_on_one_pair() {
    check_pairs(encoder_decoder_pair_flops, |(_, e)| e);
}

#[test]
fn grouped_keys_and_values_and_other_depths() {
    for (layers, kv) in [(1, 2), (3, 1), (4, 4)] {
        let cfg = config(layers, kv);
        let (d, e) = counted(&cfg, 9, 6);
        assert_eq!(
            decoder_pair_flops(&cfg, 9, 6),
            d,
            "{layers} layers, {kv} key/value heads"
        );
        assert_eq!(
            encoder_decoder_pair_flops(&cfg, 9, 6),
            e,
            "{layers} layers, {kv} key/value heads"
        );
    }
}

#[test]
fn l_plus_l_costs_about_what_a_decoder_of_l_costs_and_half_a_decoder_of_2l() {
    // Long pairs, a wide model: the head and attention matter less, the blocks
    // dominate.
    let cfg = Config {
        vocab_size: 60,
        d_model: 128,
        d_ff: 512,
        max_len: 256,
        ..config(2, 4)
    };
    let deep = Config { n_layers: 4, ..cfg.clone() };
    let ed = encoder_decoder_pair_flops(&cfg, 64, 64) as f64;
    let ratio_l = ed / decoder_pair_flops(&cfg, 64, 64) as f64;
    let ratio_2l = ed / decoder_pair_flops(&deep, 64, 64) as f64;
    assert!((0.9..1.3).contains(&ratio_l), "L + L against L: {ratio_l:.2}");
    assert!((0.45..0.7).contains(&ratio_2l), "L + L against 2L: {ratio_2l:.2}");
}
