//! The tokenizer a GGUF file carries, rebuilt with the `tokenizers` crate: a
//! byte-level BPE (Radford et al., 2019; Sennrich et al., 2016, arXiv:1508.07909)
//! from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, with the control
//! tokens (`<|im_start|>`, `<|im_end|>`, ...) as added special tokens.

use candle_core::quantized::gguf_file::Content;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::llama::{metadata_string, string_list, token_list};

const ORIGIN: &str = "GGUF tokenizer metadata";

/// GGUF token types (llama.cpp's `llama_token_type`).
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// Build the tokenizer from a GGUF's metadata.
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer> {
    let model = metadata_string(content, "tokenizer.ggml.model", ORIGIN)?;
    if model != "gpt2" {
        return Err(Error::config(
            ORIGIN,
            format!("tokenizer model `{model}` is not `gpt2` (byte-level BPE)"),
        ));
    }
    let tokens = token_list(content)?;
    let vocab: Vocab =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges = string_list(content, "tokenizer.ggml.merges")?
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    Error::config(ORIGIN, format!("merge `{m}` is not two tokens"))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(Error::tokenizer)?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre_tokenizer(content)?));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    add_special_tokens(&mut tok, content, &tokens)?;
    Ok(tok)
}

/// The pre-tokenizer named by `tokenizer.ggml.pre`. GPT-2's splits text with its
/// regex (contractions, letters, numbers, punctuation, spaces) and maps bytes to
/// printable characters; SmolLM2's (`smollm`) first splits every digit apart, as
/// its `tokenizer.json`.
fn pre_tokenizer(content: &Content) -> Result<PreTokenizerWrapper> {
    let pre = match content.metadata.get("tokenizer.ggml.pre") {
        Some(v) => {
            v.to_string().map_err(|e| Error::config(ORIGIN, e.to_string()))?.clone()
        }
        None => "gpt2".to_string(),
    };
    let byte_level = ByteLevel::new(false, true, true);
    match pre.as_str() {
        "gpt2" | "default" => Ok(byte_level.into()),
        "smollm" | "starcoder" | "refact" => {
            Ok(Sequence::new(vec![Digits::new(true).into(), byte_level.into()])
                .into())
        }
        other => Err(Error::config(
            ORIGIN,
            format!("pre-tokenizer `{other}` is not supported"),
        )),
    }
}

/// Control tokens become special added tokens (never split, skippable when
/// decoding); user-defined ones become ordinary added tokens.
fn add_special_tokens(
    tok: &mut Tokenizer,
    content: &Content,
    tokens: &[String],
) -> Result<()> {
    let Some(types) = content.metadata.get("tokenizer.ggml.token_type") else {
        return Ok(());
    };
    let types = types.to_vec().map_err(|e| Error::config(ORIGIN, e.to_string()))?;
    let mut special = Vec::new();
    let mut user = Vec::new();
    for (t, ty) in tokens.iter().zip(types) {
        match ty.to_i32().map_err(|e| Error::config(ORIGIN, e.to_string()))? {
            CONTROL => special.push(AddedToken::from(t.clone(), true)),
            USER_DEFINED => user.push(AddedToken::from(t.clone(), false)),
            _ => {}
        }
    }
    tok.add_special_tokens(special).map_err(Error::tokenizer)?;
    tok.add_tokens(user).map_err(Error::tokenizer)?;
    Ok(())
}
