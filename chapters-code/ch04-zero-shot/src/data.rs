//! The data: pretraining rows from the corpus, prompted examples of the training
//! families for multitask finetuning, and the evaluation suite, every family asked
//! with every template.

use rand::Rng as _;
use serde::Serialize;
use transformer::corpus::{
    self, DocumentStream, PROMPT_MARKERS, PromptTemplate, TaskFamily, TaskInstance,
};
use transformer::rng::{self, Rng};
use transformer::tokenizer::BpeTokenizer;

use crate::*;

/// One prompted example, tokenized: the prompt and the answer that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub family: TaskFamily,
    pub prompt: Vec<u32>,
    /// `" answer"`, tokenized.
    pub answer: Vec<u32>,
}

// ANCHOR: eval_item
/// One question of the evaluation suite under one template, ready for rank
/// classification.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub family: TaskFamily,
    /// Index of the instance within its family (the same across templates).
    pub instance: usize,
    /// Index into [`PromptTemplate::VARIANTS`].
    pub template: usize,
    pub prompt: Vec<u32>,
    /// Every option as a continuation (`" red"`), tokenized.
    pub options: Vec<Vec<u32>>,
    /// Each option's length in bytes, for the length-normalised score.
    pub option_bytes: Vec<usize>,
    /// Index of the correct option.
    pub answer: usize,
    /// The template's answer cue alone (`Answer:`), for the calibrated score.
    pub cue: Vec<u32>,
}
// ANCHOR_END: eval_item

/// The two evaluation suites: the same questions, with two kinds of options.
pub struct Suites {
    /// Options of different kinds (a colour, a place, a name, ...): choosing well
    /// needs only an understanding of what the question asks for. A held-out
    /// question's options are the held-out families' kinds (a thing, yes or no, a
    /// step), a training question's the training families' kinds, so finetuning
    /// cannot win by favouring the answers it was trained to give.
    pub kind: Vec<EvalItem>,
    /// The corpus's options, all of the answer's kind and all from the scene:
    /// choosing well needs the scene to be read.
    pub scene: Vec<EvalItem>,
}

/// Everything the experiment reads.
pub struct Data {
    pub tok: BpeTokenizer,
    /// Pretraining rows of `row_len` tokens, in the order every cell reads them.
    pub rows: Vec<Vec<u32>>,
    pub eval: Suites,
    /// The seed of the multitask-finetuning stream.
    pub mtf_seed: u64,
}

/// Counts of the data, for the page.
#[derive(Debug, Clone, Serialize)]
pub struct DataStats {
    pub vocab_size: usize,
    pub pretraining_rows: usize,
    pub pretraining_tokens: usize,
    pub eval_items: usize,
    pub eval_questions: usize,
    pub mean_prompt_tokens: f64,
    pub max_prompt_tokens: usize,
    /// Share (%) of the yes/no questions whose answer is "yes": uniform chance is
    /// 50%, but a model that always answers the majority answer scores the larger
    /// of this and its complement.
    pub yes_share: f64,
}

/// The rows of `steps` batches, plus the adaptation steps, from the document
/// stream.
pub fn pretraining_rows(
    tok: &BpeTokenizer,
    s: &Settings,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let needed = (s.pretrain_steps + s.adapt_steps) * s.batch;
    let mut rows = Vec::with_capacity(needed);
    let mut stream = DocumentStream::with_spec(SEED, s.scene.clone());
    while rows.len() < needed {
        let docs: Vec<String> = stream.by_ref().take(256).collect();
        rows.extend(tok.pack(&docs, s.row_len)?);
    }
    rows.truncate(needed);
    Ok(rows)
}

/// The first tokens of `text`, as the model would read them after a prompt.
fn continuation(tok: &BpeTokenizer, text: &str) -> anyhow::Result<Vec<u32>> {
    let ids = tok.encode(text)?;
    anyhow::ensure!(!ids.is_empty(), "empty continuation {text:?}");
    Ok(ids)
}

fn items_of(
    tok: &BpeTokenizer,
    t: &TaskInstance,
    instance: usize,
    out: &mut Vec<EvalItem>,
) -> anyhow::Result<()> {
    for (template, &tpl) in PromptTemplate::VARIANTS.iter().enumerate() {
        let options = t
            .options
            .iter()
            .map(|o| continuation(tok, &format!(" {o}")))
            .collect::<Result<_, _>>()?;
        out.push(EvalItem {
            family: t.family,
            instance,
            template,
            prompt: tok.encode(&t.prompt(tpl))?,
            options,
            option_bytes: t.options.iter().map(|o| o.len() + 1).collect(),
            answer: t
                .options
                .iter()
                .position(|o| *o == t.answer)
                .expect("answer among options"),
            cue: tok.encode(tpl.cue())?,
        });
    }
    Ok(())
}

/// The evaluation suites: `n` instances of every family, each under every template,
/// once with the corpus's options and once with options of different kinds.
pub fn eval_suites(tok: &BpeTokenizer, s: &Settings) -> anyhow::Result<Suites> {
    let (mut kind, mut scene) = (Vec::new(), Vec::new());
    for &family in TaskFamily::VARIANTS {
        let mut r = rng::stream(SEED, &format!("ch04.eval.{}", family.name()));
        let mut rk =
            rng::stream(SEED, &format!("ch04.eval.kinds.{}", family.name()));
        for instance in 0..s.eval_instances {
            let t = corpus::task(family, &mut r, &s.scene);
            items_of(tok, &t, instance, &mut scene)?;
            let group = if family.is_held_out() {
                TaskFamily::held_out()
            } else {
                TaskFamily::training()
            };
            let kinds = TaskFamily::answer_kinds(&group);
            items_of(
                tok,
                &t.with_kind_options(&kinds, &mut rk),
                instance,
                &mut kind,
            )?;
        }
    }
    Ok(Suites { kind, scene })
}

// ANCHOR: mtf_batch
/// Batch `step` of multitask finetuning: fresh instances of the training families
/// only, each family equally likely, each under a template drawn at random. The
/// held-out families never appear in prompted form.
pub fn mtf_batch(
    tok: &BpeTokenizer,
    s: &Settings,
    mtf_seed: u64,
    step: usize,
) -> anyhow::Result<Vec<Example>> {
    let families = TaskFamily::training();
    let mut r: Rng = rng::stream(mtf_seed, &format!("ch04.mtf.{step}"));
    (0..s.mtf_batch)
        .map(|_| {
            let family = families[r.random_range(0..families.len())];
            let t: TaskInstance = corpus::task(family, &mut r, &s.scene);
            let tpl = PromptTemplate::VARIANTS
                [r.random_range(0..PromptTemplate::VARIANTS.len())];
            Ok(Example {
                family,
                prompt: tok.encode(&t.prompt(tpl))?,
                answer: continuation(tok, &t.target())?,
            })
        })
        .collect()
}
// ANCHOR_END: mtf_batch

/// Build the data of a run: train the tokenizer, pack the pretraining rows,
/// tokenize the suite.
pub fn build(s: &Settings) -> anyhow::Result<Data> {
    let docs: Vec<String> = DocumentStream::with_spec(SEED, s.scene.clone())
        .take(s.tokenizer_documents)
        .collect();
    let tok = BpeTokenizer::train(docs.iter(), s.vocab_size, SENTINELS)?;
    let rows = pretraining_rows(&tok, s)?;
    let eval = eval_suites(&tok, s)?;
    Ok(Data { tok, rows, eval, mtf_seed: SEED + 1 })
}

impl Data {
    pub fn stats(&self, s: &Settings) -> DataStats {
        let lens: Vec<usize> =
            self.eval.scene.iter().map(|e| e.prompt.len()).collect();
        DataStats {
            vocab_size: self.tok.vocab_size(),
            pretraining_rows: s.pretrain_steps * s.batch,
            pretraining_tokens: s.pretrain_steps * s.batch * s.row_len,
            eval_items: self.eval.scene.len() + self.eval.kind.len(),
            eval_questions: self.eval.scene.len() / PromptTemplate::VARIANTS.len(),
            mean_prompt_tokens: transformer::chapter::round_dp(
                lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64,
                1,
            ),
            max_prompt_tokens: lens.iter().copied().max().unwrap_or(0),
            yes_share: {
                let yn: Vec<&EvalItem> = self
                    .eval
                    .scene
                    .iter()
                    .filter(|e| e.family == TaskFamily::YesNo && e.template == 0)
                    .collect();
                let yes = self.tok.encode(" yes").unwrap_or_default();
                let n_yes =
                    yn.iter().filter(|e| e.options[e.answer] == yes).count();
                transformer::chapter::round_dp(
                    100.0 * n_yes as f64 / yn.len().max(1) as f64,
                    1,
                )
            },
        }
    }
}

// ANCHOR: leakage
/// What a scan of the batches actually built found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Leakage {
    pub pretraining_rows_scanned: usize,
    /// Pretraining rows that contain a prompt marker (`Question:`, `Answer:`, `Q:`,
    /// `A:`).
    pub pretraining_rows_with_prompts: usize,
    pub finetuning_examples_scanned: usize,
    /// Finetuning examples of a held-out family, or whose text asks a held-out
    /// question.
    pub finetuning_examples_held_out: usize,
}

/// The question stems of the held-out families, as their prompts write them.
pub const HELD_OUT_STEMS: [&str; 3] =
    ["Which is bigger", "Is the ", "What is the step after"];

/// Decode every pretraining row and every finetuning example a run builds, and
/// count leaks.
pub fn scan_for_leakage(data: &Data, s: &Settings) -> anyhow::Result<Leakage> {
    let mut with_prompts = 0;
    for row in &data.rows {
        let text = data.tok.decode(row)?;
        with_prompts +=
            usize::from(PROMPT_MARKERS.iter().any(|m| text.contains(m)));
    }
    let (mut scanned, mut held_out) = (0, 0);
    for step in 0..s.mtf_steps {
        for ex in mtf_batch(&data.tok, s, data.mtf_seed, step)? {
            let text = data.tok.decode(&ex.prompt)?;
            let question =
                text.rsplit('\n').find(|l| l.contains('?')).unwrap_or("");
            scanned += 1;
            held_out += usize::from(
                ex.family.is_held_out()
                    || HELD_OUT_STEMS.iter().any(|h| question.contains(h)),
            );
        }
    }
    Ok(Leakage {
        pretraining_rows_scanned: data.rows.len(),
        pretraining_rows_with_prompts: with_prompts,
        finetuning_examples_scanned: scanned,
        finetuning_examples_held_out: held_out,
    })
}
// ANCHOR_END: leakage
