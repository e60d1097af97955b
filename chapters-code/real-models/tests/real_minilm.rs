//! all-MiniLM-L6-v2 itself, when fetched (`cargo run --release -p real-models --
//! fetch`): sentences about the same thing get closer embeddings than sentences
//! about different things.

use std::time::Instant;

use real_models::bert::{SentenceEncoder, cosine};
use real_models::fetch::{MINILM, default_dir};

#[test]
fn similar_sentences_are_closer() {
    let dir = default_dir();
    if !MINILM.is_fetched(&dir) {
        println!("skipped: models not fetched, run `cargo xtask models`");
        return;
    }
    let start = Instant::now();
    let enc = SentenceEncoder::load(&MINILM.dir(&dir)).unwrap();
    let c = &enc.model.config;
    assert_eq!(
        (c.num_hidden_layers, c.hidden_size, c.num_attention_heads),
        (6, 384, 12)
    );
    let e = enc
        .embed_vecs(&[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A man is riding a horse.",
        ])
        .unwrap();
    let bread = cosine(&e[0], &e[1]);
    let horse = cosine(&e[0], &e[2]);
    println!("cos(food, bread) = {bread:.4}");
    println!("cos(food, horse) = {horse:.4}");
    println!("loaded and embedded in {:.2} s", start.elapsed().as_secs_f64());
    assert!(
        bread > horse + 0.3,
        "bread {bread} should be well above horse {horse}"
    );
}
