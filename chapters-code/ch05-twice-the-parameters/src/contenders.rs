//! The contenders: the shapes T5's Table 2 compares, plus the decoder with as many
//! parameters as the encoder-decoder, all built by the shared library and counted
//! by it.

use serde::Serialize;
use transformer::tokenizer::Specials;
use transformer::{DecoderOnly, EncoderDecoder, ParamStore};

use ch04_zero_shot::{Arch, Net};

use crate::*;

// ANCHOR: contender
/// How deep a contender is, in units of the run's `L` (per stack, for an
/// encoder-decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Depth {
    /// `L / 2` layers (at least one).
    HalfL,
    L,
    TwoL,
}

/// One model shape: an architecture, its depth, and whether the encoder-decoder's
/// two stacks share their weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Contender {
    /// Our short name ("LM, L").
    pub name: &'static str,
    /// The row of T5's Table 2 this shape stands for, if any.
    pub t5_row: Option<&'static str>,
    /// How the model reads its input: causally, as a bidirectional prefix, or in an
    /// encoder.
    #[serde(serialize_with = "arch_code")]
    pub arch: Arch,
    pub depth: Depth,
    pub shared: bool,
}
// ANCHOR_END: contender

fn arch_code<S: serde::Serializer>(a: &Arch, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.code())
}

const fn c(
    name: &'static str,
    t5_row: Option<&'static str>,
    arch: Arch,
    depth: Depth,
    shared: bool,
) -> Contender {
    Contender { name, t5_row, arch, depth, shared }
}

/// Every shape, in the order of T5's Table 2, then the decoder with as many
/// parameters as the encoder-decoder.
pub const CONTENDERS: [Contender; 6] = [
    c("Enc-dec, L+L", Some("Encoder-decoder"), Arch::EncDec, Depth::L, false),
    c("Enc-dec shared, L+L", Some("Enc-dec, shared"), Arch::EncDec, Depth::L, true),
    c(
        "Enc-dec, L/2+L/2",
        Some("Enc-dec, 6 layers"),
        Arch::EncDec,
        Depth::HalfL,
        false,
    ),
    c("LM, L", Some("Language model"), Arch::Causal, Depth::L, false),
    c("Prefix LM, L", Some("Prefix LM"), Arch::NonCausal, Depth::L, false),
    c("LM, 2L", None, Arch::Causal, Depth::TwoL, false),
];

/// The contender called `name`.
pub fn contender(name: &str) -> Contender {
    *CONTENDERS
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no contender {name}"))
}

impl Contender {
    /// Layers of the model (per stack) for a run whose `L` is `layers`.
    pub fn layers(&self, layers: usize) -> usize {
        match self.depth {
            Depth::HalfL => (layers / 2).max(1),
            Depth::L => layers,
            Depth::TwoL => 2 * layers,
        }
    }

    // ANCHOR: build
    /// Build the model in `store`: a decoder (read causally or as a prefix LM, the
    /// same weights), an encoder-decoder, or T5's shared encoder-decoder.
    pub fn build(
        &self,
        store: &ParamStore,
        s: &Settings,
        vocab_size: usize,
    ) -> anyhow::Result<Net> {
        let cfg = s.model_config(vocab_size, self.layers(s.layers));
        Ok(match (self.arch, self.shared) {
            (Arch::EncDec, false) => {
                Net::EncDec(EncoderDecoder::new(&cfg, store.vb().pp("model"))?)
            }
            (Arch::EncDec, true) => {
                Net::EncDec(EncoderDecoder::shared(&cfg, store.vb().pp("model"))?)
            }
            (_, false) => {
                Net::Decoder(DecoderOnly::new(&cfg, store.vb().pp("model"))?)
            }
            (arch, true) => {
                anyhow::bail!("{arch:?} has no second stack to share weights with")
            }
        })
    }
    // ANCHOR_END: build
}

/// What the library counts for one contender.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub name: &'static str,
    pub layers: String,
    pub parameters: usize,
    /// Matmul FLOPs of one forward pass over the first pretraining batch, per token
    /// of text (for the tests; the page shows the average over the whole of
    /// pretraining).
    pub first_batch_forward_flops_per_token: u64,
}

/// Parameters, and forward FLOPs per token on the pairs of one pretraining batch.
pub fn costs(
    s: &Settings,
    vocab: usize,
    pairs: &[(Vec<u32>, Vec<u32>)],
    sp: &Specials,
) -> anyhow::Result<Vec<Cost>> {
    let tokens = pairs.iter().map(|(p, a)| p.len() + a.len()).sum::<usize>() as u64;
    CONTENDERS
        .iter()
        .map(|c| {
            let store = ParamStore::new(0);
            let net = c.build(&store, s, vocab)?;
            let (nll, flops) =
                transformer::flops::count(|| net.prompted_nll(c.arch, pairs, sp));
            nll?;
            let l = c.layers(s.layers);
            Ok(Cost {
                name: c.name,
                layers: if c.arch == Arch::EncDec {
                    format!("{l} + {l}")
                } else {
                    l.to_string()
                },
                parameters: store.num_params(),
                first_batch_forward_flops_per_token: flops / tokens,
            })
        })
        .collect()
}

// ANCHOR: split
/// Pretraining batch `step` as prompt–target pairs: every row of the batch is cut
/// at one point `k`, drawn for the step (not for the model or the seed), so every
/// contender reads the same inputs and is asked for the same targets. Each
/// architecture then reads a pair its own way ([`Net::prompted_nll`]): the causal
/// decoder reads the input causally, the prefix LM bidirectionally, the
/// encoder-decoder in its encoder.
pub fn pretraining_pairs(
    rows: &[Vec<u32>],
    step: usize,
) -> Vec<(Vec<u32>, Vec<u32>)> {
    use rand::Rng as _;
    let t = rows.iter().map(Vec::len).min().unwrap_or(0);
    let mut r = transformer::rng::stream(SEED, &format!("ch05.split.{step}"));
    let k = r.random_range(1..t.max(2));
    rows.iter().map(|row| (row[..k].to_vec(), row[k..].to_vec())).collect()
}
// ANCHOR_END: split

/// The held-out loss's pairs: every row cut in the middle.
pub fn heldout_pairs(rows: &[Vec<u32>]) -> Vec<(Vec<u32>, Vec<u32>)> {
    rows.iter()
        .map(|row| (row[..row.len() / 2].to_vec(), row[row.len() / 2..].to_vec()))
        .collect()
}
