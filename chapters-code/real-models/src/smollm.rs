//! SmolLM2-135M-Instruct put together: the Llama decoder, its tokenizer and its
//! chat template.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::fetch::{SMOLLM2, SMOLLM2_GGUF};
use crate::gguf_tokenizer::tokenizer_from_gguf;
use crate::llama::{Llama, metadata_string};

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

/// A ChatML-style template, `<|im_start|>role\ncontent<|im_end|>\n` per message,
/// read from `tokenizer.chat_template` for the simple case: one system and one user
/// message, then the assistant's turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    /// The system message the template inserts when none is given, if it has one.
    pub default_system: Option<String>,
}

impl ChatTemplate {
    /// Check that the GGUF's template is ChatML-style and take its default system
    /// message.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let t =
            metadata_string(content, "tokenizer.chat_template", "GGUF metadata")?;
        Self::parse(t)
    }

    /// Parse a Jinja chat template by recognising its ChatML markers.
    pub fn parse(template: &str) -> Result<Self> {
        if !template.contains(IM_START) || !template.contains(IM_END) {
            return Err(Error::config(
                "tokenizer.chat_template",
                "not a ChatML-style template (no <|im_start|> / <|im_end|>)",
            ));
        }
        let marker = format!("{IM_START}system\n");
        let default_system = template.find(&marker).and_then(|i| {
            let rest = &template[i + marker.len()..];
            rest.find(IM_END).map(|j| rest[..j].to_string())
        });
        Ok(Self { default_system })
    }

    /// The prompt for `system` (or the default) and `user`, ending where the
    /// assistant speaks.
    pub fn prompt(&self, system: Option<&str>, user: &str) -> String {
        let mut s = String::new();
        if let Some(sys) = system.or(self.default_system.as_deref()) {
            s.push_str(&format!("{IM_START}system\n{sys}{IM_END}\n"));
        }
        s.push_str(&format!(
            "{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"
        ));
        s
    }
}

/// SmolLM2: model, tokenizer, chat template and the tokens that end a turn.
pub struct SmolLm {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
    pub stop: Vec<u32>,
}

impl SmolLm {
    /// The GGUF file inside the cache folder `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        SMOLLM2.file(dir, SMOLLM2_GGUF)
    }

    /// Load any Llama GGUF with a byte-level BPE tokenizer and a ChatML template.
    pub fn load(path: &Path) -> Result<Self> {
        let (model, content) = Llama::load(path)?;
        let tokenizer = tokenizer_from_gguf(&content)?;
        let chat = ChatTemplate::from_gguf(&content)?;
        let mut stop: Vec<u32> = [IM_END, "<|endoftext|>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let eos =
            content.metadata.get("tokenizer.ggml.eos_token_id").map(|v| v.to_u32());
        if let Some(Ok(id)) = eos
            && !stop.contains(&id)
        {
            stop.push(id);
        }
        Ok(Self { model, tokenizer, chat, stop })
    }

    /// Token ids of `text` (special tokens written in it are recognised).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(Error::tokenizer)?
            .get_ids()
            .to_vec())
    }

    /// Text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(Error::tokenizer)
    }

    /// The token ids of the chat prompt for `user` with the default system message.
    pub fn chat_prompt(&self, user: &str) -> Result<Vec<u32>> {
        self.encode(&self.chat.prompt(None, user))
    }

    /// Greedy reply to `user`: the generated ids and their text without special
    /// tokens.
    pub fn reply(
        &self,
        user: &str,
        max_new: usize,
        use_cache: bool,
    ) -> Result<(Vec<u32>, String)> {
        let prompt = self.chat_prompt(user)?;
        let ids =
            self.model.generate_greedy(&prompt, max_new, &self.stop, use_cache)?;
        let text = self.tokenizer.decode(&ids, true).map_err(Error::tokenizer)?;
        Ok((ids, text.trim().to_string()))
    }
}
