//! With the models fetched: every passage chapter 3 measures is longer than the
//! largest length a configuration asks for, in both tokenizers.

use real_models::bert::SentenceEncoder;
use real_models::fetch::{MINILM, SMOLLM2, default_dir};
use real_models::settings::PASSAGES;
use real_models::smollm::SmolLm;

#[test]
fn every_passage_is_long_enough_in_both_tokenizers() {
    let dir = default_dir();
    if !MINILM.is_fetched(&dir) || !SMOLLM2.is_fetched(&dir) {
        println!("skipped: models not fetched, run `cargo xtask models`");
        return;
    }
    let encoder = SentenceEncoder::load(&MINILM.dir(&dir)).unwrap();
    let decoder = SmolLm::load(&SmolLm::path_in(&dir)).unwrap();
    for (i, p) in PASSAGES.iter().enumerate() {
        let e = encoder.tokenizer.encode(*p, true).unwrap().get_ids().len();
        let d = decoder.encode(p).unwrap().len();
        println!("passage {}: {e} encoder tokens, {d} decoder tokens", i + 1);
        assert!(e >= 192 && d >= 192, "passage {} is too short: {e}, {d}", i + 1);
    }
}
