//! Property tests of the tokenizer and the objectives on the chapter's real corpus.

use std::sync::OnceLock;

use proptest::prelude::*;
use transformer::corpus;
use transformer::objectives::{self, MlmConfig, SpanConfig};
use transformer::rng;
use transformer::tokenizer::BpeTokenizer;

fn tokenizer() -> &'static BpeTokenizer {
    static TOK: OnceLock<BpeTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        BpeTokenizer::train(
            corpus::documents(9, 300).iter(),
            600,
            ch02_what_tokens_teach::SENTINELS,
        )
        .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_text_round_trips(text in "\\PC{0,60}") {
        let tok = tokenizer();
        // Text that spells a special token's name is encoded as that token, by
        // design.
        prop_assume!(!text.contains('[') && !text.contains('<'));
        let ids = tok.encode(&text).unwrap();
        prop_assert_eq!(tok.decode(&ids).unwrap(), text);
    }

    #[test]
    fn corpus_documents_round_trip(seed in 0u64..10_000) {
        let tok = tokenizer();
        let doc = corpus::documents(seed, 1).remove(0);
        prop_assert_eq!(tok.decode(&tok.encode(&doc).unwrap()).unwrap(), doc);
    }

    #[test]
    fn span_corruption_of_corpus_rows_is_invertible(seed in 0u64..500, len in 8usize..200) {
        let tok = tokenizer();
        let rows = tok.pack(&corpus::documents(seed, 8), len).unwrap();
        let mut r = rng::seeded(seed);
        for row in &rows {
            let noise = objectives::noise_mask(row.len(), &SpanConfig::default(), &mut r);
            let (input, target) = objectives::corrupt_spans(row, &noise, &tok.specials).unwrap();
            prop_assert_eq!(&objectives::restore_spans(&input, &target, &tok.specials).unwrap(), row);
        }
    }
}

#[test]
fn masking_rates_hold_on_the_corpus() {
    let tok = tokenizer();
    let rows = tok.pack(&corpus::documents(3, 400), 64).unwrap();
    let b = objectives::masked_lm(
        &rows,
        &mut rng::seeded(1),
        &tok.specials,
        tok.vocab_size() as u32,
        &MlmConfig::default(),
    );
    let (mut chosen, mut masked, mut kept, mut eligible) = (0.0, 0.0, 0.0, 0.0);
    for r in 0..rows.len() {
        for i in 0..64 {
            eligible += f64::from(u8::from(!tok.specials.is_special(rows[r][i])));
            if b.weight[r][i] > 0.0 {
                chosen += 1.0;
                masked += f64::from(u8::from(b.input[r][i] == tok.specials.mask));
                kept += f64::from(u8::from(b.input[r][i] == rows[r][i]));
            }
        }
    }
    assert!((chosen / eligible - 0.15).abs() < 0.005, "{}", chosen / eligible);
    assert!((masked / chosen - 0.8).abs() < 0.02, "{}", masked / chosen);
    assert!((kept / chosen - 0.1).abs() < 0.02, "{}", kept / chosen);
}

#[test]
fn no_loss_on_padding_in_ragged_batches() {
    let tok = tokenizer();
    let sp = &tok.specials;
    let docs = corpus::documents(4, 6);
    let rows: Vec<Vec<u32>> = docs.iter().map(|d| tok.encode(d).unwrap()).collect();
    let mut r = rng::seeded(2);
    let vocab = tok.vocab_size() as u32;
    for b in [
        objectives::full_lm(&rows, sp),
        objectives::prefix_lm(&rows, &mut r, sp),
        objectives::masked_lm(&rows, &mut r, sp, vocab, &MlmConfig::default()),
        objectives::unilm_seq2seq(&rows, &mut r, sp, vocab, &MlmConfig::default()),
    ] {
        for (x, w) in b.target.iter().flatten().zip(b.weight.iter().flatten()) {
            if *x == sp.pad {
                assert_eq!(*w, 0.0);
            }
        }
    }
    let s = objectives::span_corruption(&rows, &mut r, sp, &SpanConfig::default())
        .unwrap();
    for (x, w) in
        s.decoder_target.iter().flatten().zip(s.decoder_weight.iter().flatten())
    {
        assert_eq!(*w, if *x == sp.pad { 0.0 } else { 1.0 });
    }
}
