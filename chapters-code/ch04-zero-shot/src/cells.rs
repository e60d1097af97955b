//! The six cells of Wang et al. (2022): three architectures, each with its
//! pretraining objectives, built from the shared library and counted by it.

use candle_core::Tensor;
use serde::Serialize;
use transformer::config::Config;
use transformer::loss::token_nll;
use transformer::objectives::{self, LmBatch, Seq2SeqBatch, SpanConfig};
use transformer::rng::Rng;
use transformer::tokenizer::Specials;
use transformer::{DecoderOnly, EncoderDecoder, ParamStore};

/// The three architectures of the paper (encoder-only models are left out there
/// too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Arch {
    /// Causal decoder (GPT).
    #[serde(rename = "CD")]
    Causal,
    /// Non-causal decoder: the same weights, bidirectional over the input (a prefix
    /// LM).
    #[serde(rename = "ND")]
    NonCausal,
    /// Encoder-decoder (T5): as many layers in each stack as a decoder has.
    #[serde(rename = "ED")]
    EncDec,
}

/// The pretraining objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Objective {
    /// Full language modelling: a loss on every token (causal decoder only).
    #[serde(rename = "FLM")]
    FullLm,
    /// Prefix language modelling: a random split per row, a loss on the part after
    /// it.
    #[serde(rename = "PLM")]
    PrefixLm,
    /// T5's span corruption (the paper's "MLM").
    #[serde(rename = "MLM")]
    SpanMlm,
}

/// One architecture with one objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Cell {
    pub arch: Arch,
    pub objective: Objective,
}

impl Arch {
    pub fn code(self) -> &'static str {
        match self {
            Arch::Causal => "CD",
            Arch::NonCausal => "ND",
            Arch::EncDec => "ED",
        }
    }
}

impl Objective {
    pub fn code(self) -> &'static str {
        match self {
            Objective::FullLm => "FLM",
            Objective::PrefixLm => "PLM",
            Objective::SpanMlm => "MLM",
        }
    }
}

impl Cell {
    pub const fn new(arch: Arch, objective: Objective) -> Self {
        Cell { arch, objective }
    }

    /// The paper's six cells, in the order of its Table 3.
    pub const ALL: [Cell; 6] = [
        Cell::new(Arch::Causal, Objective::FullLm),
        Cell::new(Arch::NonCausal, Objective::PrefixLm),
        Cell::new(Arch::EncDec, Objective::PrefixLm),
        Cell::new(Arch::Causal, Objective::SpanMlm),
        Cell::new(Arch::NonCausal, Objective::SpanMlm),
        Cell::new(Arch::EncDec, Objective::SpanMlm),
    ];

    /// "CD:FLM".
    pub fn name(self) -> String {
        format!("{}:{}", self.arch.code(), self.objective.code())
    }
}

/// A model of one of the architectures. The two decoders are one type: the mask
/// decides.
pub enum Net {
    Decoder(DecoderOnly),
    EncDec(EncoderDecoder),
}

/// What a batch costs and teaches, beside its loss.
pub struct BatchLoss {
    pub loss: Tensor,
    pub tokens_supervised: usize,
}

/// Per-row negative log-likelihoods and loss weights, `[b, t]` each.
pub struct RowNll {
    pub nll: Tensor,
    pub weight: Tensor,
}

impl Net {
    /// Build the architecture `arch` in `store` (the two decoders build the same
    /// model).
    pub fn new(
        store: &ParamStore,
        arch: Arch,
        cfg: &Config,
    ) -> anyhow::Result<Net> {
        Ok(match arch {
            Arch::Causal | Arch::NonCausal => {
                Net::Decoder(DecoderOnly::new(cfg, store.vb().pp("model"))?)
            }
            Arch::EncDec => {
                Net::EncDec(EncoderDecoder::new(cfg, store.vb().pp("model"))?)
            }
        })
    }

    fn lm_nll(&self, b: &LmBatch) -> anyhow::Result<RowNll> {
        let Net::Decoder(m) = self else {
            anyhow::bail!("a single-stack batch needs a decoder")
        };
        let (x, y, w) = b.tensors()?;
        Ok(RowNll { nll: token_nll(&m.forward(&x, &b.mask)?, &y)?, weight: w })
    }

    fn seq2seq_nll(&self, b: &Seq2SeqBatch, pad: u32) -> anyhow::Result<RowNll> {
        let Net::EncDec(m) = self else {
            anyhow::bail!("a source-target batch needs an encoder-decoder")
        };
        let (src, tgt_in, tgt, w) = b.tensors()?;
        let logits = m.forward_padded(&src, &b.source_lens(pad), &tgt_in)?;
        Ok(RowNll { nll: token_nll(&logits, &tgt)?, weight: w })
    }

    // ANCHOR: pretrain_batch
    /// The pretraining loss of `cell` on `rows`: every cell reads the same rows.
    pub fn pretrain_loss(
        &self,
        cell: Cell,
        rows: &[Vec<u32>],
        r: &mut Rng,
        sp: &Specials,
    ) -> anyhow::Result<BatchLoss> {
        let span = SpanConfig::default();
        let nll = match (cell.arch, cell.objective) {
            (Arch::Causal, Objective::FullLm) => {
                self.lm_nll(&objectives::full_lm(rows, sp))?
            }
            (Arch::NonCausal, Objective::PrefixLm) => {
                self.lm_nll(&objectives::prefix_lm(rows, r, sp))?
            }
            (Arch::EncDec, Objective::PrefixLm) => self
                .seq2seq_nll(&objectives::seq2seq_prefix_lm(rows, r, sp), sp.pad)?,
            (Arch::Causal, Objective::SpanMlm) => self.lm_nll(
                &objectives::decoder_span_corruption(rows, r, sp, &span, false)?,
            )?,
            (Arch::NonCausal, Objective::SpanMlm) => self.lm_nll(
                &objectives::decoder_span_corruption(rows, r, sp, &span, true)?,
            )?,
            (Arch::EncDec, Objective::SpanMlm) => self.seq2seq_nll(
                &objectives::span_corruption(rows, r, sp, &span)?,
                sp.pad,
            )?,
            (arch, objective) => anyhow::bail!(
                "{arch:?} is not trained with {objective:?} in the paper"
            ),
        };
        nll.mean()
    }
    // ANCHOR_END: pretrain_batch

    // ANCHOR: prompted
    /// Prompt–answer pairs as `arch` reads them: the causal decoder reads the
    /// prompt causally, the non-causal decoder as a bidirectional prefix, the
    /// encoder-decoder in its encoder. Only answer tokens carry weight.
    pub fn prompted_nll(
        &self,
        arch: Arch,
        pairs: &[(Vec<u32>, Vec<u32>)],
        sp: &Specials,
    ) -> anyhow::Result<RowNll> {
        match arch {
            Arch::Causal => self.lm_nll(&objectives::prompted_lm(pairs, sp, false)),
            Arch::NonCausal => {
                self.lm_nll(&objectives::prompted_lm(pairs, sp, true))
            }
            Arch::EncDec => {
                self.seq2seq_nll(&objectives::seq2seq_pairs(pairs, sp), sp.pad)
            }
        }
    }
    // ANCHOR_END: prompted
}

impl RowNll {
    /// The mean loss over weighted positions.
    pub fn mean(&self) -> anyhow::Result<BatchLoss> {
        let supervised = self.weight.sum_all()?.to_scalar::<f32>()? as usize;
        Ok(BatchLoss {
            loss: masked_cross_entropy_from(&self.nll, &self.weight)?,
            tokens_supervised: supervised,
        })
    }

    /// Each row's summed log-likelihood over its weighted positions.
    pub fn row_log_likelihoods(&self) -> anyhow::Result<Vec<f64>> {
        let per_row = (&self.nll * &self.weight)?.sum(1)?.neg()?;
        Ok(per_row.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
    }
}

fn masked_cross_entropy_from(
    nll: &Tensor,
    weight: &Tensor,
) -> candle_core::Result<Tensor> {
    (nll * weight)?.sum_all()?.broadcast_div(&weight.sum_all()?.maximum(1e-9)?)
}

/// What the library counts for one cell's model.
#[derive(Debug, Clone, Serialize)]
pub struct CellCost {
    pub cell: String,
    pub layers: String,
    pub parameters: usize,
    /// Matmul FLOPs of one forward pass per pretraining row, divided by the row's
    /// tokens, counted by the library on a real batch.
    pub forward_flops_per_token: u64,
}

/// Parameters and forward FLOPs per token of every cell, measured on one batch of
/// rows.
pub fn costs(
    cfg: &Config,
    rows: &[Vec<u32>],
    sp: &Specials,
) -> anyhow::Result<Vec<CellCost>> {
    let mut out = Vec::new();
    for cell in Cell::ALL {
        let store = ParamStore::new(0);
        let net = Net::new(&store, cell.arch, cfg)?;
        let mut r = transformer::rng::seeded(0);
        let (loss, flops) =
            transformer::flops::count(|| net.pretrain_loss(cell, rows, &mut r, sp));
        loss?;
        let tokens = rows.iter().map(Vec::len).sum::<usize>() as u64;
        let layers = match cell.arch {
            Arch::EncDec => format!("{} + {}", cfg.n_layers, cfg.n_layers),
            _ => cfg.n_layers.to_string(),
        };
        out.push(CellCost {
            cell: cell.name(),
            layers,
            parameters: store.num_params(),
            forward_flops_per_token: flops / tokens,
        });
    }
    Ok(out)
}
