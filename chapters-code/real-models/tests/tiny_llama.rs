//! The Llama decoder, its GGUF tokenizer and chat template on tiny random models
//! that our own code writes with candle's GGUF writer (F32 and Q8_0): they load,
//! cached decoding equals recomputation, the tokenizer round-trips any text, and
//! bad files give errors.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use real_models::Error;
use real_models::fixtures::*;
use real_models::llama::{Cache, Llama, LlamaConfig};
use real_models::smollm::{ChatTemplate, SmolLm};
use transformer::layers::max_abs_diff;

fn tiny(dtype: GgmlDType) -> (tempfile::TempDir, SmolLm) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama(&path, 11, dtype).unwrap();
    let m = SmolLm::load(&path).unwrap();
    (dir, m)
}

#[test]
fn config_comes_from_the_metadata() {
    let (_dir, m) = tiny(GgmlDType::F32);
    let (tokens, _, _) = llama_vocab();
    let want = LlamaConfig {
        n_layers: LLAMA_LAYERS,
        d_model: LLAMA_D,
        n_heads: LLAMA_HEADS,
        n_kv_heads: LLAMA_KV_HEADS,
        head_dim: LLAMA_D / LLAMA_HEADS,
        ffn_dim: LLAMA_FFN,
        vocab_size: tokens.len(),
        context_length: LLAMA_CONTEXT,
        rope_base: 100_000.0,
        rms_eps: 1e-5f32 as f64,
    };
    assert_eq!(m.model.config, want);
    assert_eq!(m.stop.first(), Some(&2), "<|im_end|> ends a turn");
}

#[test]
fn cached_generation_equals_recomputation() {
    for dtype in [GgmlDType::F32, GgmlDType::Q8_0] {
        let (_dir, m) = tiny(dtype);
        let prompt = m.chat_prompt("the theater").unwrap();
        let cached = m.model.generate_greedy(&prompt, 24, &[], true).unwrap();
        let fresh = m.model.generate_greedy(&prompt, 24, &[], false).unwrap();
        assert_eq!(cached.len(), 24);
        assert_eq!(cached, fresh, "{dtype:?}: the cache changed the greedy tokens");
    }
}

#[test]
fn cached_logits_equal_recomputed_logits_at_every_step() {
    let (_dir, m) = tiny(GgmlDType::F32);
    let ids = m.encode("<|im_start|>user\nthe other tea in a tin").unwrap();
    let row =
        |s: &[u32]| Tensor::new(s, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let mut cache = Cache::new(&m.model);
    m.model.forward_last(&row(&ids[..3]), &mut cache).unwrap();
    for t in 3..ids.len() {
        let step = m.model.forward_last(&row(&ids[t..t + 1]), &mut cache).unwrap();
        let full = m
            .model
            .forward_last(&row(&ids[..t + 1]), &mut Cache::new(&m.model))
            .unwrap();
        let diff = max_abs_diff(&step, &full).unwrap();
        assert!(
            diff < 1e-4,
            "position {t}: cached and recomputed logits differ by {diff}"
        );
        assert_eq!(cache.len(), t + 1);
    }
}

#[test]
fn q8_0_is_close_to_f32() {
    let (_d1, f) = tiny(GgmlDType::F32);
    let (_d2, q) = tiny(GgmlDType::Q8_0);
    let ids = Tensor::new(&f.encode("the tin").unwrap()[..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let a = f.model.forward_last(&ids, &mut Cache::new(&f.model)).unwrap();
    let b = q.model.forward_last(&ids, &mut Cache::new(&q.model)).unwrap();
    let scale: f32 =
        a.abs().unwrap().max(1).unwrap().squeeze(0).unwrap().to_scalar().unwrap();
    let diff = max_abs_diff(&a, &b).unwrap();
    assert!(diff < 0.05 * scale, "Q8_0 logits differ by {diff} (scale {scale})");
}

#[test]
fn tokenizer_round_trips_and_keeps_special_tokens_whole() {
    let (_dir, m) = tiny(GgmlDType::F32);
    for text in [
        "Grüße, 世界! naïve café",
        "the theater 2024\n\ttabs",
        "  spaces  ",
        "🙂 emoji",
    ] {
        let ids = m.encode(text).unwrap();
        assert_eq!(m.decode(&ids).unwrap(), text);
    }
    let ids = m.encode(" the").unwrap();
    assert_eq!(ids.len(), 1, "merges apply: {ids:?}");
    assert_eq!(m.tokenizer.id_to_token(ids[0]).as_deref(), Some("Ġthe"));
    let ids = m.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    let digits = m.encode("2024").unwrap();
    assert_eq!(digits.len(), 4, "SmolLM2's pre-tokenizer splits digits apart");
}

#[test]
fn chat_template_is_chatml() {
    let t = ChatTemplate::parse(SMOLLM2_TEMPLATE).unwrap();
    let sys =
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
    assert_eq!(t.default_system.as_deref(), Some(sys));
    assert_eq!(
        t.prompt(None, "Hi?"),
        format!(
            "<|im_start|>system\n{sys}<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
        )
    );
    assert_eq!(
        t.prompt(Some("Be brief."), "Hi?"),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert!(ChatTemplate::parse("{{ messages }}").is_err());
}

#[test]
fn bad_files_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.gguf");
    assert!(matches!(Llama::load(&p), Err(Error::NotFetched { .. })));

    std::fs::write(&p, b"this is not a gguf file at all").unwrap();
    assert!(matches!(Llama::load(&p), Err(Error::Config { .. })));

    write_tiny_llama_with(&p, 1, GgmlDType::F32, "gpt2", None).unwrap();
    let err = Llama::load(&p).err().expect("wrong architecture");
    assert!(err.to_string().contains("gpt2"), "{err}");

    write_tiny_llama_with(
        &p,
        1,
        GgmlDType::F32,
        "llama",
        Some("blk.1.attn_k.weight"),
    )
    .unwrap();
    let err = Llama::load(&p).err().expect("missing tensor");
    assert!(err.to_string().contains("blk.1.attn_k.weight"), "{err}");

    let (_d, m) = tiny(GgmlDType::F32);
    let too_long = vec![5u32; LLAMA_CONTEXT + 1];
    assert!(m.model.generate_greedy(&too_long, 1, &[], true).is_err());
    assert!(m.model.generate_greedy(&[], 1, &[], true).is_err());
}
