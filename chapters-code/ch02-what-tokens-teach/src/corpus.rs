//! The corpus and the tokenizer: counts, example encodings, the task families.

use std::fmt::Write as _;

use serde::Serialize;
use transformer::chapter::round_dp;
use transformer::corpus::{self, TaskFamily};
use transformer::tokenizer::BpeTokenizer;

use crate::*;

/// The corpus and the tokenizer, counted.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusStats {
    pub documents: usize,
    pub words: usize,
    pub distinct_words: usize,
    pub characters: usize,
    pub tokens: usize,
    pub vocab_size: usize,
    pub special_tokens: u32,
    pub merges: usize,
    pub tokens_per_word: f64,
    pub characters_per_token: f64,
    pub words_per_document: f64,
    pub round_trip_exact: bool,
    pub task_families: usize,
    pub held_out_families: usize,
}

/// Count the corpus, and check that every document decodes back to itself.
pub fn corpus_stats(
    docs: &[String],
    tok: &BpeTokenizer,
) -> anyhow::Result<CorpusStats> {
    let (mut words, mut characters, mut tokens, mut exact) = (0, 0, 0, true);
    let mut vocabulary = std::collections::BTreeSet::new();
    for d in docs {
        let ids = tok.encode(d)?;
        exact &= tok.decode(&ids)? == *d;
        tokens += ids.len();
        characters += d.chars().count();
        for w in corpus::words(d) {
            words += 1;
            vocabulary.insert(w.to_lowercase());
        }
    }
    let special = tok.specials.first_regular();
    Ok(CorpusStats {
        documents: docs.len(),
        words,
        distinct_words: vocabulary.len(),
        characters,
        tokens,
        vocab_size: tok.vocab_size(),
        special_tokens: special,
        merges: tok.vocab_size() - 256 - special as usize,
        tokens_per_word: round_dp(tokens as f64 / words as f64, 3),
        characters_per_token: round_dp(characters as f64 / tokens as f64, 2),
        words_per_document: round_dp(words as f64 / docs.len() as f64, 1),
        round_trip_exact: exact,
        task_families: TaskFamily::VARIANTS.len(),
        held_out_families: TaskFamily::held_out().len(),
    })
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('|', "&#124;")
}

/// A token as a table cell shows it: a leading space as `␣`, specials by name.
pub(crate) fn shown(tok: &BpeTokenizer, id: u32) -> String {
    escape(&tok.token_text(id).replace(' ', "␣"))
}

/// A table of example encodings: text, its tokens, and the counts.
pub fn encodings_table(
    tok: &BpeTokenizer,
    texts: &[&str],
) -> anyhow::Result<String> {
    let mut t =
        String::from("| Text | Tokens | Words | Tokens |\n|---|---|---:|---:|\n");
    for text in texts {
        let ids = tok.encode(text)?;
        let pieces: Vec<String> = ids
            .iter()
            .map(|&i| format!("`{}`", tok.token_text(i).replace(' ', "␣")))
            .collect();
        writeln!(
            t,
            "| {} | {} | {} | {} |",
            escape(text),
            pieces.join(" "),
            corpus::words(text).count(),
            ids.len()
        )?;
    }
    Ok(t)
}

/// A short description of the tasks chapter 4 draws from the same world.
pub fn tasks_table() -> String {
    let mut t = String::from(
        "| Task family | Held out | Example question | Answer |\n|---|---|---|---|\n",
    );
    for &f in TaskFamily::VARIANTS {
        let x = corpus::tasks(f, SEED, 1).remove(0);
        let _ = writeln!(
            t,
            "| `{}` | {} | {} | {} |",
            f.name(),
            if f.is_held_out() { "yes" } else { "no" },
            escape(&x.question),
            escape(&x.answer)
        );
    }
    t
}

pub(crate) fn sample_md(doc: &str) -> String {
    let mut s = String::new();
    for line in doc.lines() {
        let _ = writeln!(s, "> {}\n>", escape(line));
    }
    s.trim_end_matches(">\n").trim_end().to_string() + "\n"
}
