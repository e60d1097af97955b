//! SmolLM2-135M-Instruct itself, when fetched (`cargo run --release -p real-models
//! -- fetch`): its tokenizer round-trips text, it answers a chat question
//! correctly, and cached greedy decoding gives the same tokens as recomputing the
//! whole sequence at every step.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::quantized::gguf_file::Content;
use real_models::fetch::{SMOLLM2, default_dir};
use real_models::gguf_tokenizer::tokenizer_from_gguf;
use real_models::smollm::SmolLm;

fn gguf() -> Option<PathBuf> {
    let dir = default_dir();
    if !SMOLLM2.is_fetched(&dir) {
        println!("skipped: models not fetched, run `cargo xtask models`");
        return None;
    }
    Some(SmolLm::path_in(&dir))
}

#[test]
fn tokenizer_round_trips_non_ascii() {
    let Some(path) = gguf() else { return };
    let mut f = std::fs::File::open(&path).unwrap();
    let tok = tokenizer_from_gguf(&Content::read(&mut f).unwrap()).unwrap();
    assert_eq!(tok.get_vocab_size(true), 49_152);
    for text in [
        "Grüße, 世界! naïve café",
        "What is the capital of France?",
        "x = 12345;\n\ty",
    ] {
        let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
        let back = tok.decode(&ids, false).unwrap();
        println!("{text:?} -> {} tokens", ids.len());
        assert_eq!(back, text);
    }
    let ids = tok
        .encode("<|im_start|>user\nHi<|im_end|>", false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!(
        (ids[0], *ids.last().unwrap()),
        (1, 2),
        "special tokens stay whole: {ids:?}"
    );
}

#[test]
fn answers_paris_and_the_cache_changes_nothing() {
    let Some(path) = gguf() else { return };
    let start = Instant::now();
    let m = SmolLm::load(&path).unwrap();
    let c = &m.model.config;
    assert_eq!(
        (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim),
        (30, 576, 9, 3, 64)
    );
    assert_eq!((c.vocab_size, c.rope_base), (49_152, 100_000.0));
    println!("loaded and dequantised in {:.2} s", start.elapsed().as_secs_f64());

    let question = "What is the capital of France?";
    let (_, answer) = m.reply(question, 24, true).unwrap();
    println!("Q: {question}\nA: {answer}");
    assert!(answer.contains("Paris"), "answer: {answer}");

    let prompt = m.chat_prompt("Write one sentence about the sea.").unwrap();
    let n = 32;
    let t = Instant::now();
    let cached = m.model.generate_greedy(&prompt, n, &[], true).unwrap();
    let cached_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let fresh = m.model.generate_greedy(&prompt, n, &[], false).unwrap();
    let fresh_s = t.elapsed().as_secs_f64();
    println!(
        "prompt {} tokens, {n} new tokens: with cache {:.1} tokens/s, recomputing {:.1} tokens/s",
        prompt.len(),
        n as f64 / cached_s,
        n as f64 / fresh_s
    );
    println!("text: {:?}", m.tokenizer.decode(&cached, false).unwrap());
    assert_eq!(cached, fresh, "cached greedy decoding must equal recomputation");
}
