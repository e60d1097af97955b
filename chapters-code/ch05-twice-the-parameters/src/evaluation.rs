//! Evaluation: the held-out loss (every architecture asked for the same targets
//! after the same inputs), step listing by greedy generation, and chapter 4's
//! zero-shot suite.

use candle_core::Tensor;
use serde::Serialize;
use transformer::corpus::TaskFamily;
use transformer::tokenizer::{BpeTokenizer, Specials};
use transformer::{DEVICE, Forward, MaskKind};

use ch04_zero_shot::{Arch, EvalItem, Hits, Net, Score};

use crate::*;

/// Held-out pairs scored per batch.
const ROWS_PER_BATCH: usize = 16;

/// Each pair's loss on its target, in nats per target token, as `arch` reads the
/// input.
pub fn pair_losses(
    net: &Net,
    arch: Arch,
    pairs: &[(Vec<u32>, Vec<u32>)],
    sp: &Specials,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(ROWS_PER_BATCH) {
        let ll = net.prompted_nll(arch, chunk, sp)?.row_log_likelihoods()?;
        out.extend(ll.iter().zip(chunk).map(|(l, (_, a))| -l / a.len() as f64));
    }
    Ok(out)
}

fn argmax_last(logits: &Tensor) -> anyhow::Result<u32> {
    let (_, t, _) = logits.dims3()?;
    Ok(logits.narrow(1, t - 1, 1)?.flatten_all()?.argmax(0)?.to_scalar::<u32>()?)
}

// ANCHOR: generate
/// Greedy decoding of `n` tokens after `prompt`, with a KV cache: the decoders read
/// the prompt once (the prefix LM bidirectionally) and then one token at a time;
/// the encoder-decoder encodes the prompt once and decodes from `[BOS]`.
pub fn generate(
    net: &Net,
    arch: Arch,
    prompt: &[u32],
    n: usize,
    sp: &Specials,
) -> anyhow::Result<Vec<u32>> {
    let ids = |xs: &[u32]| Tensor::from_vec(xs.to_vec(), (1, xs.len()), &DEVICE);
    let mut out = Vec::with_capacity(n);
    let mut cache = Vec::new();
    match (net, arch) {
        (Net::Decoder(m), Arch::Causal | Arch::NonCausal) => {
            let read = if arch == Arch::Causal {
                MaskKind::Causal
            } else {
                MaskKind::Bidirectional
            };
            let mut logits = m
                .run(
                    &ids(prompt)?,
                    &read,
                    Forward { cache: Some(&mut cache), trace: false },
                )?
                .logits;
            while out.len() < n {
                let next = argmax_last(&logits)?;
                out.push(next);
                let step = Forward { cache: Some(&mut cache), trace: false };
                logits = m.run(&ids(&[next])?, &MaskKind::Causal, step)?.logits;
            }
        }
        (Net::EncDec(m), Arch::EncDec) => {
            let (enc, _) = m.encode(&ids(prompt)?, false)?;
            let kv = m.cross_kv(&enc)?;
            let mut next = sp.bos;
            while out.len() < n {
                let step = Forward { cache: Some(&mut cache), trace: false };
                next = argmax_last(&m.decode(&ids(&[next])?, &kv, step)?.logits)?;
                out.push(next);
            }
        }
        _ => anyhow::bail!("{arch:?} does not run on this model"),
    }
    Ok(out)
}
// ANCHOR_END: generate

/// How a finetuned model does on step listing.
#[derive(Debug, Clone, Serialize)]
pub struct ListingScores {
    /// Per question: the greedy answer, as long as the reference, is exactly the
    /// reference.
    pub exact: Vec<bool>,
    /// Per question: the share (%) of the reference's steps that the greedy answer
    /// gives in their place ("wash the cup" second when it is second).
    pub steps: Vec<f64>,
    /// Per question: the reference answer's loss, nats per token.
    pub loss: Vec<f64>,
}

// ANCHOR: steps_right
/// The steps of an answer: `" wash the cup, dry the box."` → `["wash the cup", "dry
/// the box"]`.
pub fn steps_of(answer: &str) -> Vec<&str> {
    answer.trim().trim_end_matches('.').split(", ").map(str::trim).collect()
}

/// Share (%) of the reference's steps that `generated` gives in the same place.
pub fn steps_right(generated: &str, reference: &str) -> f64 {
    let (g, r) = (steps_of(generated), steps_of(reference));
    let right =
        r.iter().enumerate().filter(|&(i, step)| g.get(i) == Some(step)).count();
    100.0 * right as f64 / r.len() as f64
}
// ANCHOR_END: steps_right

pub fn listing_scores(
    net: &Net,
    arch: Arch,
    items: &[ListingItem],
    tok: &BpeTokenizer,
) -> anyhow::Result<ListingScores> {
    let sp = &tok.specials;
    let (mut exact, mut steps) = (Vec::new(), Vec::new());
    for it in items {
        let g = generate(net, arch, &it.prompt, it.answer.len(), sp)?;
        exact.push(g == it.answer);
        steps.push(steps_right(&tok.decode(&g)?, &tok.decode(&it.answer)?));
    }
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        items.iter().map(|it| (it.prompt.clone(), it.answer.clone())).collect();
    Ok(ListingScores { exact, steps, loss: pair_losses(net, arch, &pairs, sp)? })
}

/// The zero-shot suite's two readings that matter here: chapter 4's scene suite on
/// the held-out families (the real zero-shot test) and its kind suite on the
/// finetuning families (did finetuning take?). Summed log-likelihood, as T0.
pub struct SuiteHits {
    pub held_out: Hits,
    pub finetuning_families: Hits,
}

pub fn suite_hits(net: &Net, arch: Arch, data: &Data) -> anyhow::Result<SuiteHits> {
    let sp = &data.world.tok.specials;
    let pick = |items: &[EvalItem], held: bool| -> Vec<EvalItem> {
        items.iter().filter(|i| i.family.is_held_out() == held).cloned().collect()
    };
    let scene = pick(&data.world.eval.scene, true);
    let kind = pick(&data.world.eval.kind, false);
    let e_scene = ch04_zero_shot::evaluate(net, arch, &scene, sp)?;
    let e_kind = ch04_zero_shot::evaluate(net, arch, &kind, sp)?;
    Ok(SuiteHits {
        held_out: Hits::new(
            &e_scene,
            &scene,
            &TaskFamily::held_out(),
            Score::Summed,
        ),
        finetuning_families: Hits::new(
            &e_kind,
            &kind,
            &TaskFamily::training(),
            Score::Summed,
        ),
    })
}
