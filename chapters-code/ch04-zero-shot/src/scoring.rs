//! Zero-shot evaluation by rank classification: score every option's log-likelihood
//! after the prompt and pick the best, summed (as T0 does), divided by the option's
//! length in bytes (the EleutherAI harness's `acc_norm`), or calibrated by the
//! option's likelihood after the answer cue alone (Holtzman et al. 2021's
//! domain-conditional PMI).

use std::collections::{BTreeMap, BTreeSet};

use candle_core::Tensor;
use transformer::corpus::TaskFamily;
use transformer::layers::log_softmax_last;
use transformer::tokenizer::Specials;
use transformer::{DEVICE, Forward, KvCache, MaskKind};

use crate::*;

/// The verdict of rank classification on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The option with the highest summed log-likelihood is the answer.
    pub correct: bool,
    /// The option with the highest log-likelihood per byte is the answer.
    pub correct_norm: bool,
    /// The option whose log-likelihood rises most over its likelihood after the cue
    /// alone (`log p(option | prompt) − log p(option | "Answer:")`) is the answer.
    pub correct_calibrated: bool,
}

// ANCHOR: rank_classification
/// Summed log-likelihood of every option of every item, as `arch` reads prompts.
///
/// The prompt is read once per item, not once per option: items whose prompts have
/// the same length share a batch, each prompt's keys and values (or, for the
/// encoder-decoder, its encoding) are copied to one row per option, and only the
/// options' tokens are run on top.
pub fn option_log_likelihoods(
    net: &Net,
    arch: Arch,
    items: &[EvalItem],
    sp: &Specials,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, it) in items.iter().enumerate() {
        by_len.entry(it.prompt.len()).or_default().push(i);
    }
    let mut scores: Vec<Vec<f64>> =
        items.iter().map(|it| vec![f64::NAN; it.options.len()]).collect();
    for group in by_len.values() {
        for chunk in group.chunks(PROMPTS_PER_BATCH) {
            let batch: Vec<&EvalItem> = chunk.iter().map(|&i| &items[i]).collect();
            let ll = score_group(net, arch, &batch, sp)?;
            for (&i, l) in chunk.iter().zip(ll) {
                scores[i] = l;
            }
        }
    }
    Ok(scores)
}
// ANCHOR_END: rank_classification

/// Prompts read in one forward pass.
const PROMPTS_PER_BATCH: usize = 16;

/// Options of items whose prompts all have the same length.
fn score_group(
    net: &Net,
    arch: Arch,
    items: &[&EvalItem],
    sp: &Specials,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let len = items[0].prompt.len();
    let prompts = Tensor::from_vec(
        items.iter().flat_map(|it| it.prompt.clone()).collect(),
        (items.len(), len),
        &DEVICE,
    )?;
    // One row per (item, option).
    let rows: Vec<(usize, usize)> = items
        .iter()
        .enumerate()
        .flat_map(|(i, it)| (0..it.options.len()).map(move |o| (i, o)))
        .collect();
    let owner = Tensor::from_vec(
        rows.iter().map(|&(i, _)| i as u32).collect(),
        rows.len(),
        &DEVICE,
    )?;
    let m = rows.iter().map(|&(i, o)| items[i].options[o].len()).max().unwrap_or(1);
    let padded = |f: &dyn Fn(&[u32]) -> Vec<u32>| -> candle_core::Result<Tensor> {
        let mut data = Vec::with_capacity(rows.len() * m);
        for &(i, o) in &rows {
            let mut r = f(&items[i].options[o]);
            r.resize(m, sp.pad);
            data.extend(r);
        }
        Tensor::from_vec(data, (rows.len(), m), &DEVICE)
    };
    // Log-probabilities `[rows, m, vocab]`: position j scores option token j.
    let logp = match (net, arch) {
        (Net::Decoder(model), Arch::Causal | Arch::NonCausal) => {
            // Read the prompts once, keeping each layer's keys and values; the last
            // prompt position predicts each option's first token.
            let prompt_mask = if arch == Arch::Causal {
                MaskKind::Causal
            } else {
                MaskKind::Bidirectional
            };
            let mut cache = Vec::new();
            let first = model
                .run(
                    &prompts,
                    &prompt_mask,
                    Forward { cache: Some(&mut cache), trace: false },
                )?
                .logits;
            let first = first
                .narrow(1, len - 1, 1)?
                .contiguous()?
                .index_select(&owner, 0)?;
            let mut cache: Vec<KvCache> = cache
                .iter()
                .map(|c| -> candle_core::Result<KvCache> {
                    Ok(KvCache {
                        k: c.k
                            .as_ref()
                            .map(|k| k.contiguous()?.index_select(&owner, 0))
                            .transpose()?,
                        v: c.v
                            .as_ref()
                            .map(|v| v.contiguous()?.index_select(&owner, 0))
                            .transpose()?,
                        lens: None,
                    })
                })
                .collect::<candle_core::Result<_>>()?;
            let rest = if m > 1 {
                let opts = padded(&|o| o.to_vec())?.narrow(1, 0, m - 1)?;
                let out = model.run(
                    &opts,
                    &MaskKind::Causal,
                    Forward { cache: Some(&mut cache), trace: false },
                )?;
                Tensor::cat(&[&first, &out.logits], 1)?
            } else {
                first
            };
            log_softmax_last(&rest)?
        }
        (Net::EncDec(model), Arch::EncDec) => {
            let (enc, _) = model.encode(&prompts, false)?;
            let kv = model.cross_kv(&enc.index_select(&owner, 0)?)?;
            let dec_in = padded(&|o| {
                std::iter::once(sp.bos)
                    .chain(o[..o.len() - 1].iter().copied())
                    .collect()
            })?;
            log_softmax_last(
                &model.decode(&dec_in, &kv, Forward::default())?.logits,
            )?
        }
        _ => anyhow::bail!("{arch:?} does not run on this model"),
    };
    let logp: Vec<Vec<Vec<f32>>> = logp.to_vec3()?;
    let mut out: Vec<Vec<f64>> =
        items.iter().map(|it| vec![0.0; it.options.len()]).collect();
    for (r, &(i, o)) in rows.iter().enumerate() {
        out[i][o] = items[i].options[o]
            .iter()
            .enumerate()
            .map(|(j, &tok)| f64::from(logp[r][j][tok as usize]))
            .sum();
    }
    Ok(out)
}

// ANCHOR: pick
/// Pick the best option of one item, by summed, per-byte and calibrated
/// log-likelihood (`ll` after the prompt, `prior` after the cue alone); ties go to
/// the first option.
pub fn pick(item: &EvalItem, ll: &[f64], prior: &[f64]) -> Pick {
    let best = |f: &dyn Fn(usize) -> f64| {
        (0..ll.len()).fold(0, |b, o| if f(o) > f(b) { o } else { b })
    };
    Pick {
        correct: best(&|o| ll[o]) == item.answer,
        correct_norm: best(&|o| ll[o] / item.option_bytes[o] as f64) == item.answer,
        correct_calibrated: best(&|o| ll[o] - prior[o]) == item.answer,
    }
}
// ANCHOR_END: pick

/// One evaluation of one model on the whole suite: a pick per item, in suite order.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub picks: Vec<Pick>,
}

pub fn evaluate(
    net: &Net,
    arch: Arch,
    items: &[EvalItem],
    sp: &Specials,
) -> anyhow::Result<Evaluation> {
    let ll = option_log_likelihoods(net, arch, items, sp)?;
    // The same options after the answer cue alone: what the model expects of any
    // answer.
    let cued: Vec<EvalItem> = items
        .iter()
        .map(|it| EvalItem { prompt: it.cue.clone(), ..it.clone() })
        .collect();
    let prior = option_log_likelihoods(net, arch, &cued, sp)?;
    Ok(Evaluation {
        picks: items
            .iter()
            .zip(ll.iter().zip(&prior))
            .map(|(it, (l, p))| pick(it, l, p))
            .collect(),
    })
}

/// One model's evaluation on both suites.
#[derive(Debug, Clone)]
pub struct Evaluations {
    pub kind: Evaluation,
    pub scene: Evaluation,
}

pub fn evaluate_suites(
    net: &Net,
    arch: Arch,
    suites: &Suites,
    sp: &Specials,
) -> anyhow::Result<Evaluations> {
    Ok(Evaluations {
        kind: evaluate(net, arch, &suites.kind, sp)?,
        scene: evaluate(net, arch, &suites.scene, sp)?,
    })
}

/// Which score a summary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "lowercase")]
pub enum Score {
    Summed,
    #[strum(serialize = "per byte")]
    PerByte,
    Calibrated,
}

impl Score {
    /// Whether `p` is right under this score.
    pub fn of(self, p: &Pick) -> bool {
        match self {
            Score::Summed => p.correct,
            Score::PerByte => p.correct_norm,
            Score::Calibrated => p.correct_calibrated,
        }
    }
}

/// Accuracy (%) of each family, as T0-Eval reports it: the median over templates of
/// each template's accuracy ([`Hits::accuracy`], one family at a time).
pub fn family_accuracy(
    e: &Evaluation,
    items: &[EvalItem],
    score: Score,
) -> BTreeMap<TaskFamily, f64> {
    let families: BTreeSet<TaskFamily> = items.iter().map(|i| i.family).collect();
    families
        .into_iter()
        .map(|f| {
            let hits = Hits::new(e, items, &[f], score);
            let all: Vec<usize> = (0..hits.instances()).collect();
            (f, hits.accuracy(&all))
        })
        .collect()
}

/// The median of a list (the mean of the middle two for an even count).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { xs[n / 2] } else { 0.5 * (xs[n / 2 - 1] + xs[n / 2]) }
}

/// The mean over `families` of their accuracies.
pub fn mean_over(acc: &BTreeMap<TaskFamily, f64>, families: &[TaskFamily]) -> f64 {
    families.iter().map(|f| acc[f]).sum::<f64>() / families.len() as f64
}

/// The expected accuracy (%) of picking an option uniformly at random, per family.
pub fn random_baselines(items: &[EvalItem]) -> BTreeMap<TaskFamily, f64> {
    let mut sum: BTreeMap<TaskFamily, (f64, usize)> = BTreeMap::new();
    for it in items {
        let e = sum.entry(it.family).or_insert((0.0, 0));
        e.0 += 100.0 / it.options.len() as f64;
        e.1 += 1;
    }
    sum.into_iter().map(|(f, (s, n))| (f, s / n as f64)).collect()
}
