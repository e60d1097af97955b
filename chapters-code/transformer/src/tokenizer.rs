//! A byte-level BPE tokenizer, trained with Hugging Face's `tokenizers` crate.
//!
//! The saved `tokenizer.json` is the library's standard format, so Python's
//! `tokenizers.Tokenizer.from_file("tokenizer.json")` loads it unchanged.
//! Byte-level pre-tokenisation (GPT-2's) starts from all 256 bytes, so every text
//! encodes and decodes back to itself exactly; merges are learned from the corpus
//! up to the requested vocabulary size.
//!
//! Special tokens come first, with fixed ids: `[PAD]` 0, `[BOS]` 1, `[EOS]` 2,
//! `[SEP]` 3, `[MASK]` 4, then the sentinels `<extra_id_0>`, `<extra_id_1>`, ...
//! (T5's names). Every other id is a regular token; [`Specials::first_regular`] is
//! the first of them.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// Padding: never attended to usefully, never given a loss.
pub const PAD: &str = "[PAD]";
/// Start of a document (and the decoder's start token for the encoder-decoder).
pub const BOS: &str = "[BOS]";
/// End of a document (and of an encoder input or a decoder target).
pub const EOS: &str = "[EOS]";
/// Separator between two segments (source and target of a sequence-to-sequence
/// example).
pub const SEP: &str = "[SEP]";
/// BERT's mask token.
pub const MASK: &str = "[MASK]";

/// The name of sentinel `i`, as T5 writes it.
pub fn sentinel_name(i: usize) -> String {
    format!("<extra_id_{i}>")
}

/// The ids of the special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Specials {
    pub pad: u32,
    pub bos: u32,
    pub eos: u32,
    pub sep: u32,
    pub mask: u32,
    /// Sentinel `i` has id `first_sentinel + i`.
    pub first_sentinel: u32,
    pub n_sentinels: u32,
}

impl Specials {
    /// The layout every tokenizer of this module uses: five named tokens, then the
    /// sentinels.
    pub const fn with_sentinels(n_sentinels: u32) -> Self {
        Specials {
            pad: 0,
            bos: 1,
            eos: 2,
            sep: 3,
            mask: 4,
            first_sentinel: 5,
            n_sentinels,
        }
    }

    /// The id of sentinel `i`, if there is one.
    pub fn sentinel(&self, i: usize) -> Option<u32> {
        u32::try_from(i)
            .ok()
            .filter(|&i| i < self.n_sentinels)
            .map(|i| self.first_sentinel + i)
    }

    /// Which sentinel `id` is, if it is one.
    pub fn sentinel_index(&self, id: u32) -> Option<usize> {
        (self.first_sentinel..self.first_regular())
            .contains(&id)
            .then(|| (id - self.first_sentinel) as usize)
    }

    /// The first id that is not a special token.
    pub fn first_regular(&self) -> u32 {
        self.first_sentinel + self.n_sentinels
    }

    /// Whether `id` is a special token.
    pub fn is_special(&self, id: u32) -> bool {
        id < self.first_regular()
    }

    /// The special tokens' names, in id order.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> =
            [PAD, BOS, EOS, SEP, MASK].map(String::from).to_vec();
        v.extend((0..self.n_sentinels as usize).map(sentinel_name));
        v
    }
}

/// A trained tokenizer and the ids of its special tokens.
#[derive(Clone)]
pub struct BpeTokenizer {
    pub inner: Tokenizer,
    pub specials: Specials,
}

fn tk<T>(r: tokenizers::Result<T>) -> Result<T> {
    r.map_err(|e| Error::Tokenizer {
        reason: "the tokenizers crate failed".into(),
        source: Some(e),
    })
}

// ANCHOR: train_tokenizer
impl BpeTokenizer {
    /// Train byte-level BPE on `texts` up to `vocab_size` ids (specials and the 256
    /// byte symbols included), with `n_sentinels` sentinel tokens.
    pub fn train<I, S>(
        texts: I,
        vocab_size: usize,
        n_sentinels: u32,
    ) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let specials = Specials::with_sentinels(n_sentinels);
        let minimum = 256 + specials.first_regular() as usize;
        if vocab_size <= minimum {
            return Err(Error::tokenizer(format!(
                "vocab_size {vocab_size} leaves no room for merges \
                 (256 bytes + {} specials)",
                minimum - 256
            )));
        }
        let special_tokens = specials
            .names()
            .into_iter()
            .map(|n| AddedToken::from(n, true))
            .collect();
        // The trainer wants a std HashSet; ByteLevel hands out another hash set
        // type.
        let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(special_tokens)
            .initial_alphabet(alphabet)
            .build();
        let mut trainer = TrainerWrapper::from(trainer);
        let mut inner = Tokenizer::new(BPE::default());
        let byte_level = ByteLevel::new(false, true, true);
        inner.with_pre_tokenizer(Some(byte_level));
        inner.with_decoder(Some(byte_level));
        tk(inner.train(&mut trainer, texts))?;
        Self::checked(inner, n_sentinels)
    }
    // ANCHOR_END: train_tokenizer

    /// Check that the special tokens sit at their fixed ids.
    fn checked(inner: Tokenizer, n_sentinels: u32) -> Result<Self> {
        let specials = Specials::with_sentinels(n_sentinels);
        for (id, name) in specials.names().iter().enumerate() {
            let found = inner.token_to_id(name);
            if found != Some(id as u32) {
                return Err(Error::tokenizer(format!(
                    "special token {name} has id {found:?}, expected {id}"
                )));
            }
        }
        Ok(BpeTokenizer { inner, specials })
    }

    /// The tokenizer as `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String> {
        tk(self.inner.to_string(true))
    }

    /// Read a tokenizer from `tokenizer.json` text; the number of sentinels is read
    /// from its vocabulary.
    pub fn from_json(json: &str) -> Result<Self> {
        let inner = tk(json.parse::<Tokenizer>())?;
        let mut n = 0;
        while inner.token_to_id(&sentinel_name(n)).is_some() {
            n += 1;
        }
        Self::checked(inner, n as u32)
    }

    /// Save as `tokenizer.json`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_text(path, &self.to_json()?)
    }

    /// Load a `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let json =
            std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        Self::from_json(&json).map_err(|e| Error::Tokenizer {
            reason: format!("loading {}", path.display()),
            source: Some(Box::new(e)),
        })
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`, without any special token added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(tk(self.inner.encode(text, false))?.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens written out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        tk(self.inner.decode(ids, false))
    }

    /// How one token reads: its decoded text (a leading space included), or a
    /// special name.
    pub fn token_text(&self, id: u32) -> String {
        if self.specials.is_special(id) {
            return self.inner.id_to_token(id).unwrap_or_default();
        }
        self.decode(&[id]).unwrap_or_default()
    }

    // ANCHOR: pack
    /// Encode documents as `[BOS] doc [EOS]`, concatenate them, and cut the stream
    /// into rows of exactly `len` tokens (the incomplete last row is dropped).
    /// Packing leaves no padding: every position of every row is real text.
    pub fn pack<S: AsRef<str>>(
        &self,
        docs: &[S],
        len: usize,
    ) -> Result<Vec<Vec<u32>>> {
        if len == 0 {
            return Err(Error::tokenizer("rows must hold at least one token"));
        }
        let mut stream = Vec::new();
        for d in docs {
            stream.push(self.specials.bos);
            stream.extend(self.encode(d.as_ref())?);
            stream.push(self.specials.eos);
        }
        Ok(stream.chunks_exact(len).map(<[u32]>::to_vec).collect())
    }
    // ANCHOR_END: pack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BpeTokenizer {
        BpeTokenizer::train(crate::corpus::documents(1, 300).iter(), 400, 8)
            .unwrap()
    }

    #[test]
    fn specials_have_fixed_ids_and_survive_a_round_trip_through_json() {
        let tok = small();
        assert_eq!(tok.vocab_size(), 400);
        assert_eq!(tok.inner.token_to_id(MASK), Some(tok.specials.mask));
        assert_eq!(
            tok.inner.token_to_id("<extra_id_7>"),
            Some(tok.specials.sentinel(7).unwrap())
        );
        assert_eq!(tok.specials.sentinel(8), None);
        assert_eq!(
            tok.specials.sentinel_index(tok.specials.first_sentinel + 3),
            Some(3)
        );
        assert_eq!(tok.specials.sentinel_index(tok.specials.mask), None);
        let back = BpeTokenizer::from_json(&tok.to_json().unwrap()).unwrap();
        assert_eq!(back.specials, tok.specials);
        let text = "Ada keeps a red cup in the kitchen.";
        assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());
    }

    #[test]
    fn a_special_token_in_text_is_one_id() {
        let tok = small();
        let ids = tok.encode("the [MASK] is red").unwrap();
        assert!(ids.contains(&tok.specials.mask), "{ids:?}");
    }

    #[test]
    fn a_too_small_vocabulary_is_an_error() {
        assert!(BpeTokenizer::train(["abc"].iter(), 200, 4).is_err());
    }

    #[test]
    fn packing_fills_rows_exactly() {
        let tok = small();
        let docs = crate::corpus::documents(2, 20);
        let rows = tok.pack(&docs, 33).unwrap();
        assert!(rows.iter().all(|r| r.len() == 33));
        assert_eq!(rows[0][0], tok.specials.bos);
        assert!(tok.pack(&docs, 0).is_err());
    }
}
