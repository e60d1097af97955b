//! The data: chapter 4's world (tokenizer, pretraining rows, finetuning stream,
//! zero-shot suite), held-out rows for the loss, and the sequence-to-sequence task,
//! step listing.

use serde::Serialize;
use transformer::corpus::{self, DocumentStream, Scene, Section};
use transformer::rng;
use transformer::tokenizer::BpeTokenizer;

use crate::*;

// ANCHOR: listing
/// One step-listing question: a person's plan, told in prose (sometimes out of
/// order: "Before drying the cup, Ada washes it"), and the steps to write out in
/// order. The answer is generated token by token, never chosen from options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// "Ada has a plan for the party. Before painting the box, Ada washes the cup.
    /// ... Question: What are the steps, in order?\nAnswer:"
    pub prompt: String,
    /// " wash the cup, paint the box, dry the box."
    pub answer: String,
}

/// A listing question about a fresh scene from `r`.
pub fn listing(r: &mut rng::Rng, spec: &corpus::SceneSpec) -> Listing {
    let scene = Scene::sample(r, spec);
    let plan = corpus::render(&scene, Section::Procedure, r).join(" ");
    let steps: Vec<String> =
        scene.procedure.steps.iter().map(|s| scene.step_base(s)).collect();
    Listing {
        prompt: format!("{plan}\nQuestion: What are the steps, in order?\nAnswer:"),
        answer: format!(" {}.", steps.join(", ")),
    }
}
// ANCHOR_END: listing

/// A listing question, tokenized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingItem {
    pub prompt: Vec<u32>,
    pub answer: Vec<u32>,
}

/// Everything the experiment reads.
pub struct Data {
    /// Chapter 4's: the tokenizer, the pretraining rows every model reads in the
    /// same order, the zero-shot suites and the seed of the finetuning stream.
    pub world: ch04_zero_shot::Data,
    /// Rows from documents no model trains on.
    pub heldout: Vec<Vec<u32>>,
    /// Step-listing questions no model trains on.
    pub listing: Vec<ListingItem>,
}

/// Counts of the data, for the page.
#[derive(Debug, Clone, Serialize)]
pub struct DataStats {
    pub vocab_size: usize,
    pub row_len: usize,
    pub pretraining_rows: usize,
    pub pretraining_tokens: usize,
    pub heldout_rows: usize,
    pub listing_questions: usize,
    pub mean_listing_prompt_tokens: f64,
    pub mean_listing_answer_tokens: f64,
    /// Share (%) of the listing questions whose plan names a later step before an
    /// earlier one ("Before drying the cup, Ada washes the cup").
    pub listing_out_of_order: f64,
}

fn encode_listing(tok: &BpeTokenizer, l: &Listing) -> anyhow::Result<ListingItem> {
    Ok(ListingItem {
        prompt: tok.encode(&l.prompt)?,
        answer: tok.encode(&l.answer)?,
    })
}

/// Held-out rows: documents from another seed of the same world, packed like the
/// training rows.
fn heldout_rows(tok: &BpeTokenizer, s: &Settings) -> anyhow::Result<Vec<Vec<u32>>> {
    let mut stream = DocumentStream::with_spec(SEED + 100, s.world.scene.clone());
    let mut rows = Vec::new();
    while rows.len() < s.heldout_rows {
        let docs: Vec<String> = stream.by_ref().take(64).collect();
        rows.extend(tok.pack(&docs, s.world.row_len)?);
    }
    rows.truncate(s.heldout_rows);
    Ok(rows)
}

/// The listing questions of the evaluation: a stream no finetuning batch draws
/// from.
pub fn listing_questions(s: &Settings) -> Vec<Listing> {
    let mut r = rng::stream(SEED, "ch05.listing.eval");
    (0..s.listing_questions).map(|_| listing(&mut r, &s.world.scene)).collect()
}

pub fn build(s: &Settings) -> anyhow::Result<Data> {
    let world = ch04_zero_shot::data::build(&s.world)?;
    let heldout = heldout_rows(&world.tok, s)?;
    let listing = listing_questions(s)
        .iter()
        .map(|l| encode_listing(&world.tok, l))
        .collect::<Result<_, _>>()?;
    Ok(Data { world, heldout, listing })
}

// ANCHOR: finetune_batch
/// Finetuning batch `step`: chapter 4's prompted examples of its training families,
/// and as many step-listing questions, fresh for every step. The held-out families
/// never appear.
pub fn finetune_batch(
    data: &Data,
    s: &Settings,
    step: usize,
) -> anyhow::Result<Vec<(Vec<u32>, Vec<u32>)>> {
    let tok = &data.world.tok;
    let mut pairs: Vec<(Vec<u32>, Vec<u32>)> =
        ch04_zero_shot::mtf_batch(tok, &s.world, data.world.mtf_seed, step)?
            .into_iter()
            .map(|e| (e.prompt, e.answer))
            .collect();
    let mut r = rng::stream(SEED, &format!("ch05.listing.train.{step}"));
    for _ in 0..s.finetune_batch - pairs.len() {
        let l = encode_listing(tok, &listing(&mut r, &s.world.scene))?;
        pairs.push((l.prompt, l.answer));
    }
    Ok(pairs)
}
// ANCHOR_END: finetune_batch

impl Data {
    pub fn stats(&self, s: &Settings) -> DataStats {
        let n = self.listing.len().max(1) as f64;
        let qs = listing_questions(s);
        let out_of_order =
            qs.iter().filter(|l| l.prompt.contains("Before ")).count();
        DataStats {
            vocab_size: self.world.tok.vocab_size(),
            row_len: s.world.row_len,
            pretraining_rows: s.pretrain_steps * s.world.batch,
            pretraining_tokens: s.pretrain_steps * s.world.batch * s.world.row_len,
            heldout_rows: self.heldout.len(),
            listing_questions: self.listing.len(),
            mean_listing_prompt_tokens: round1(
                self.listing.iter().map(|l| l.prompt.len()).sum::<usize>() as f64
                    / n,
            ),
            mean_listing_answer_tokens: round1(
                self.listing.iter().map(|l| l.answer.len()).sum::<usize>() as f64
                    / n,
            ),
            listing_out_of_order: round1(100.0 * out_of_order as f64 / n),
        }
    }
}

fn round1(x: f64) -> f64 {
    transformer::chapter::round_dp(x, 1)
}
