//! Tiny models of the same formats as the real ones, written by our own code: a
//! random BERT as safetensors + config.json + tokenizer.json, and a random Llama as
//! GGUF with a byte-level BPE tokenizer and a ChatML template in its metadata. The
//! loading tests use them, and so does the quick configuration, which runs every
//! analysis without the fetched models.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// A tensor of uniform values in `[-scale, scale]` from a seeded generator.
pub fn random(rng: &mut ChaCha8Rng, shape: &[usize], scale: f32) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// A tensor of values near 1 (for norm gains).
pub fn near_one(rng: &mut ChaCha8Rng, n: usize) -> Result<Tensor> {
    let v: Vec<f32> = (0..n).map(|_| 1.0 + rng.random_range(-0.1..0.1)).collect();
    Ok(Tensor::from_vec(v, n, &Device::Cpu)?)
}

pub const BERT_WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "man", "is", "eating", "food",
    "bread", "riding", "horse", "piece", "of", ".", "the", "##s",
];

pub const BERT_HIDDEN: usize = 16;
pub const BERT_HEADS: usize = 4;
pub const BERT_LAYERS: usize = 2;
pub const BERT_FFN: usize = 32;
pub const BERT_POSITIONS: usize = 24;

/// Write a tiny random BERT (`config.json`, `model.safetensors`, `tokenizer.json`)
/// into `dir`.
pub fn write_tiny_bert(dir: &Path, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (d, f) = (BERT_HIDDEN, BERT_FFN);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: &str, x: Result<Tensor>| -> Result<()> {
        t.insert(name.to_string(), x?);
        Ok(())
    };
    put(
        "embeddings.word_embeddings.weight",
        random(&mut rng, &[BERT_WORDS.len(), d], 1.0),
    )?;
    put(
        "embeddings.position_embeddings.weight",
        random(&mut rng, &[BERT_POSITIONS, d], 0.5),
    )?;
    put("embeddings.token_type_embeddings.weight", random(&mut rng, &[2, d], 0.5))?;
    put("embeddings.LayerNorm.weight", near_one(&mut rng, d))?;
    put("embeddings.LayerNorm.bias", random(&mut rng, &[d], 0.1))?;
    for l in 0..BERT_LAYERS {
        let p = |s: &str| format!("encoder.layer.{l}.{s}");
        for (name, out_dim, in_dim) in [
            ("attention.self.query", d, d),
            ("attention.self.key", d, d),
            ("attention.self.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", f, d),
            ("output.dense", d, f),
        ] {
            let s = 1.0 / (in_dim as f32).sqrt();
            put(
                &p(&format!("{name}.weight")),
                random(&mut rng, &[out_dim, in_dim], s),
            )?;
            put(&p(&format!("{name}.bias")), random(&mut rng, &[out_dim], 0.1))?;
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            put(&p(&format!("{name}.weight")), near_one(&mut rng, d))?;
            put(&p(&format!("{name}.bias")), random(&mut rng, &[d], 0.1))?;
        }
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": BERT_WORDS.len(), "hidden_size": d, "num_hidden_layers": BERT_LAYERS,
        "num_attention_heads": BERT_HEADS, "intermediate_size": f, "hidden_act": "gelu",
        "max_position_embeddings": BERT_POSITIONS, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute", "pad_token_id": 0
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string())
        .map_err(|e| Error::io("writing", &path, e))?;
    write_wordpiece_tokenizer(&dir.join("tokenizer.json"))
}

/// A BERT WordPiece tokenizer over [`BERT_WORDS`], saved as `tokenizer.json`.
fn write_wordpiece_tokenizer(path: &Path) -> Result<()> {
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::template::TemplateProcessing;
    let vocab: HashMap<String, u32> = BERT_WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i as u32))
        .collect();
    let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
    let wp = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .map_err(Error::tokenizer)?;
    let mut tok = tokenizers::Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::default()))
        .map_err(Error::tokenizer)?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    let post = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .map_err(Error::tokenizer)?
        .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
        .build()
        .map_err(Error::tokenizer)?;
    tok.with_post_processor(Some(post));
    tok.save(path, false).map_err(Error::tokenizer)
}

/// Shape of the tiny Llama: grouped-query attention with 4 query heads sharing 2 KV
/// heads.
pub const LLAMA_D: usize = 32;
pub const LLAMA_HEADS: usize = 4;
pub const LLAMA_KV_HEADS: usize = 2;
pub const LLAMA_FFN: usize = 64;
pub const LLAMA_LAYERS: usize = 2;
pub const LLAMA_CONTEXT: usize = 1024;

/// SmolLM2-135M-Instruct's chat template, as its GGUF stores it.
pub const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The byte-level BPE vocabulary: 3 control tokens, the 256 byte characters, a few
/// merges.
pub fn llama_vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![3i32; 3];
    let mut alphabet: Vec<char> =
        tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
            .into_iter()
            .collect();
    alphabet.sort();
    for c in alphabet {
        tokens.push(c.to_string());
        types.push(1);
    }
    let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
        types.push(1);
    }
    (tokens, types, merges.iter().map(|s| s.to_string()).collect())
}

/// Write a tiny random Llama GGUF; matrices stored as `dtype` (F32 or Q8_0), norms
/// as F32.
pub fn write_tiny_llama(path: &Path, seed: u64, dtype: GgmlDType) -> Result<()> {
    write_tiny_llama_with(path, seed, dtype, "llama", None)
}

/// As [`write_tiny_llama`], with another architecture name or one tensor left out.
pub fn write_tiny_llama_with(
    path: &Path,
    seed: u64,
    dtype: GgmlDType,
    arch: &str,
    leave_out: Option<&str>,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (tokens, types, merges) = llama_vocab();
    let (d, f, hd) = (LLAMA_D, LLAMA_FFN, LLAMA_D / LLAMA_HEADS);
    let kv = LLAMA_KV_HEADS * hd;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mat =
        |name: String, out_dim: usize, in_dim: usize, rng: &mut ChaCha8Rng| {
            let x = random(rng, &[out_dim, in_dim], 1.0 / (in_dim as f32).sqrt())?;
            Ok::<_, Error>((name, QTensor::quantize(&x, dtype)?))
        };
    let norm = |name: String, rng: &mut ChaCha8Rng| {
        Ok::<_, Error>((
            name,
            QTensor::quantize(&near_one(rng, d)?, GgmlDType::F32)?,
        ))
    };
    let mut list =
        vec![mat("token_embd.weight".into(), tokens.len(), d, &mut rng)?];
    for l in 0..LLAMA_LAYERS {
        let p = |s: &str| format!("blk.{l}.{s}.weight");
        list.push(norm(p("attn_norm"), &mut rng)?);
        list.push(mat(p("attn_q"), d, d, &mut rng)?);
        list.push(mat(p("attn_k"), kv, d, &mut rng)?);
        list.push(mat(p("attn_v"), kv, d, &mut rng)?);
        list.push(mat(p("attn_output"), d, d, &mut rng)?);
        list.push(norm(p("ffn_norm"), &mut rng)?);
        list.push(mat(p("ffn_gate"), f, d, &mut rng)?);
        list.push(mat(p("ffn_up"), f, d, &mut rng)?);
        list.push(mat(p("ffn_down"), d, f, &mut rng)?);
    }
    list.push(norm("output_norm.weight".into(), &mut rng)?);
    tensors.extend(list.into_iter().filter(|(n, _)| Some(n.as_str()) != leave_out));

    let strings = |v: &[String]| {
        Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
    };
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("llama.block_count".into(), Value::U32(LLAMA_LAYERS as u32)),
        ("llama.context_length".into(), Value::U32(LLAMA_CONTEXT as u32)),
        ("llama.embedding_length".into(), Value::U32(d as u32)),
        ("llama.feed_forward_length".into(), Value::U32(f as u32)),
        ("llama.attention.head_count".into(), Value::U32(LLAMA_HEADS as u32)),
        ("llama.attention.head_count_kv".into(), Value::U32(LLAMA_KV_HEADS as u32)),
        ("llama.rope.freq_base".into(), Value::F32(100_000.0)),
        ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-5)),
        ("llama.vocab_size".into(), Value::U32(tokens.len() as u32)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        ("tokenizer.ggml.tokens".into(), strings(&tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strings(&merges)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.chat_template".into(), Value::String(SMOLLM2_TEMPLATE.into())),
    ];
    let md_refs: Vec<(&str, &Value)> =
        md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> =
        tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file =
        std::fs::File::create(path).map_err(|e| Error::io("creating", path, e))?;
    gguf_file::write(&mut file, &md_refs, &t_refs)?;
    Ok(())
}

/// Both tiny models inside `dir`, laid out as the fetch lays out the real ones.
pub fn write_tiny_models(dir: &Path) -> Result<()> {
    let bert = crate::fetch::MINILM.dir(dir);
    let llama = crate::fetch::SMOLLM2.dir(dir);
    for d in [&bert, &llama] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("creating", d, e))?;
    }
    write_tiny_bert(&bert, 7)?;
    write_tiny_llama(&llama.join(crate::fetch::SMOLLM2_GGUF), 11, GgmlDType::Q8_0)
}
