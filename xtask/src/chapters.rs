//! The chapter crates whose outputs the book includes. `cargo xtask book` runs each
//! one in release with its default configuration and writes into
//! `book/generated/<id>/`.

pub struct Chapter {
    /// Results id used by `{{#value <id>.key}}` and the folder
    /// `book/generated/<id>/`.
    pub id: &'static str,
    /// The Cargo package (and binary) under `chapters-code/`.
    pub package: &'static str,
    /// It analyses the real pretrained models, which `cargo xtask models` fetches.
    pub models: bool,
}

pub const CHAPTERS: &[Chapter] = &[
    // One line per chapter, in book order, e.g.
    // Chapter { id: "ch01", package: "ch01-four-masks", models: false },
    Chapter { id: "ch00", package: "ch00-attention", models: false },
    Chapter { id: "ch01", package: "ch01-four-masks", models: false },
    Chapter { id: "ch02", package: "ch02-what-tokens-teach", models: false },
    Chapter { id: "ch03", package: "ch03-low-rank", models: false },
    Chapter { id: "ch04", package: "ch04-zero-shot", models: false },
    Chapter { id: "ch05", package: "ch05-twice-the-parameters", models: false },
    Chapter { id: "ch06", package: "ch06-kv-cache", models: false },
    // The real models' analyses, which chapters 1, 3 and 6 quote.
    Chapter { id: "real", package: "real-models", models: true },
];
