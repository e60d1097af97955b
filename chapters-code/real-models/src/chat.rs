//! Chapter 6: a real multi-turn chat with SmolLM2-Instruct under its own chat
//! template, the cache kept from turn to turn against recomputing the whole
//! conversation at every turn; the real KV-cache size per token; and how much
//! appending a turn changes the cached values of earlier tokens in the decoder and
//! in the encoder.

use std::time::Instant;

use anyhow::Context;
use candle_core::{D, Device, Tensor};
use serde::Serialize;
use transformer::chapter::{round_dp, round_sig};

use crate::HeadTrace;
use crate::bert::SentenceEncoder;
use crate::llama::Cache;
use crate::smollm::SmolLm;

/// One turn of the chat, as the kept-cache run produced it.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub user: String,
    pub reply: String,
    /// Tokens the kept cache had to run before this turn's reply: the end of the
    /// previous reply, this turn's template and message.
    pub new_tokens: usize,
    /// Tokens recomputing runs before this turn's reply: the whole conversation.
    pub context_tokens: usize,
    /// Tokens generated, the one that ended the turn included.
    pub reply_tokens: usize,
}

/// The measured cost of one turn, in milliseconds (machine-dependent).
#[derive(Debug, Clone, Serialize)]
pub struct TurnTime {
    /// Running the tokens before the reply: the new ones (kept) or all (recomputed).
    pub kept_prefill_ms: f64,
    pub recomputed_prefill_ms: f64,
    /// `recomputed_prefill_ms / kept_prefill_ms`.
    pub prefill_ratio: f64,
    /// The whole turn: prefill and decoding the reply.
    pub kept_ms: f64,
    pub recomputed_ms: f64,
    pub kept_cumulative_ms: f64,
    pub recomputed_cumulative_ms: f64,
    /// `recomputed_ms / kept_ms`.
    pub ratio: f64,
}

/// The KV cache of SmolLM2, per token.
#[derive(Debug, Clone, Serialize)]
pub struct KvSize {
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// `2 L g d_h · 4` bytes (keys and values, f32).
    pub bytes_per_token: usize,
    /// The cache after the chat: the library's `KvCache::bytes` over every layer,
    /// the tokens it holds, and their quotient.
    pub bytes_held: usize,
    pub tokens_held: usize,
    pub bytes_per_token_measured: usize,
    /// The same model without grouped-query attention (`g = h`).
    pub bytes_per_token_without_gqa: usize,
    pub context_length: usize,
    /// A full context's cache, MiB.
    pub full_context_mib: f64,
}

/// Changes below this are f32 rounding (they differ from machine to machine), and
/// are recorded as 0.
pub const DRIFT_FLOOR: f64 = 1e-5;

/// How much earlier tokens' cached values change when a turn is appended, per
/// layer: `‖V' − V‖ / ‖V‖` over the first turn's positions, 0 where it is below
/// [`DRIFT_FLOOR`].
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub first_turn_tokens: usize,
    pub appended_tokens: usize,
    pub floor: f64,
    pub per_layer: Vec<f64>,
    pub max: f64,
}

/// What the chat produced (no clock in it).
#[derive(Debug, Clone, Serialize)]
pub struct Chat {
    pub turns: Vec<Turn>,
    /// Every reply token the same whether the cache was kept or recomputed.
    pub kept_equals_recomputed: bool,
    /// The first reply's first tokens the same with no cache at all.
    pub uncached_equals_cached: bool,
    pub uncached_tokens: usize,
    pub kv: KvSize,
    pub decoder_drift: Drift,
    pub encoder_drift: Drift,
}

/// Machine-dependent measurements of the chat.
#[derive(Debug, Clone, Serialize)]
pub struct ChatTimes {
    pub turns: Vec<TurnTime>,
    /// Whole chat: recomputed over kept.
    pub total_ratio: f64,
    /// Greedy decoding of the first reply, tokens per second.
    pub cached_tokens_per_s: f64,
    pub uncached_tokens_per_s: f64,
    pub uncached_over_cached: f64,
}

/// How many times each chat is timed (the fastest time per turn is kept).
pub const TIMING_REPEATS: usize = 3;

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn row(ids: &[u32]) -> anyhow::Result<Tensor> {
    Ok(Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?)
}

fn argmax(logits: &Tensor) -> anyhow::Result<u32> {
    Ok(logits.argmax(D::Minus1)?.squeeze(0)?.to_scalar::<u32>()?)
}

// ANCHOR: reply
/// Run whatever part of `conversation` the cache has not seen (the prefill), then
/// decode greedily until a stop token or `max` tokens. The last token generated is
/// not run: it becomes part of the conversation, which the next turn runs. Returns
/// the reply and the prefill's milliseconds.
fn reply(
    lm: &SmolLm,
    conversation: &[u32],
    cache: &mut Cache,
    max: usize,
) -> anyhow::Result<(Vec<u32>, f64)> {
    let start = Instant::now();
    let unseen = &conversation[cache.len()..];
    let mut logits = lm.model.forward_last(&row(unseen)?, cache)?;
    let prefill_ms = ms(start);
    let mut out = Vec::new();
    loop {
        let next = argmax(&logits)?;
        out.push(next);
        if lm.stop.contains(&next) || out.len() == max {
            return Ok((out, prefill_ms));
        }
        logits = lm.model.forward_last(&row(&[next])?, cache)?;
    }
}
// ANCHOR_END: reply

/// The tokens that end a reply and open the next user turn, under the template.
fn next_turn(lm: &SmolLm, user: &str) -> anyhow::Result<Vec<u32>> {
    Ok(lm.encode(&format!(
        "\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    ))?)
}

/// A reply as the conversation records it: ended by `<|im_end|>` whatever
/// stopped it.
fn closed(lm: &SmolLm, mut ids: Vec<u32>) -> anyhow::Result<Vec<u32>> {
    let end = lm
        .tokenizer
        .token_to_id("<|im_end|>")
        .context("the tokenizer has no <|im_end|>")?;
    if ids.last().is_some_and(|t| lm.stop.contains(t)) {
        ids.pop();
    }
    ids.push(end);
    Ok(ids)
}

/// One whole chat. With `keep`, one cache serves every turn; without, each turn
/// starts a fresh cache and runs the whole conversation again. Returns the replies,
/// per-turn token counts and per-turn milliseconds (whole turn, prefill).
#[allow(clippy::type_complexity)]
fn chat(
    lm: &SmolLm,
    users: &[&str],
    max: usize,
    keep: bool,
) -> anyhow::Result<(Vec<Vec<u32>>, Vec<(usize, usize)>, Vec<(f64, f64)>, Cache)> {
    let mut conversation = Vec::new();
    let mut cache = Cache::new(&lm.model);
    let (mut replies, mut counts, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for (k, user) in users.iter().enumerate() {
        if k == 0 {
            conversation = lm.chat_prompt(user)?;
        } else {
            conversation.extend(next_turn(lm, user)?);
        }
        if !keep {
            cache = Cache::new(&lm.model);
        }
        counts.push((conversation.len() - cache.len(), conversation.len()));
        let start = Instant::now();
        let (ids, prefill_ms) = reply(lm, &conversation, &mut cache, max)?;
        times.push((ms(start), prefill_ms));
        conversation.extend(closed(lm, ids.clone())?);
        replies.push(ids);
    }
    Ok((replies, counts, times, cache))
}

/// Greedy decoding of up to `n` tokens after `prompt`, with the cache or running
/// the whole sequence again at every step. Returns the tokens and the seconds of
/// the steps after the first token (the prompt's prefill is not timed).
fn decode_timed(
    lm: &SmolLm,
    prompt: &[u32],
    n: usize,
    use_cache: bool,
) -> anyhow::Result<(Vec<u32>, f64)> {
    let mut cache = Cache::new(&lm.model);
    let mut seq = prompt.to_vec();
    let mut out = vec![argmax(&lm.model.forward_last(&row(prompt)?, &mut cache)?)?];
    let start = Instant::now();
    while out.len() < n && !lm.stop.contains(&out[out.len() - 1]) {
        let next = out[out.len() - 1];
        seq.push(next);
        let logits = if use_cache {
            lm.model.forward_last(&row(&[next])?, &mut cache)?
        } else {
            lm.model.forward_last(&row(&seq)?, &mut Cache::new(&lm.model))?
        };
        out.push(argmax(&logits)?);
    }
    Ok((out, start.elapsed().as_secs_f64()))
}

/// `‖b − a‖ / ‖a‖` over the first `m` positions of two traces' values, per layer.
fn drift(a: &[HeadTrace], b: &[HeadTrace], m: usize) -> anyhow::Result<Vec<f64>> {
    a.iter()
        .zip(b)
        .map(|(a, b)| {
            let va = a.values.narrow(2, 0, m)?;
            let vb = b.values.narrow(2, 0, m)?;
            let diff = (&vb - &va)?.sqr()?.sum_all()?.to_scalar::<f32>()?;
            let base = va.sqr()?.sum_all()?.to_scalar::<f32>()?;
            Ok(round_sig(f64::from(diff / base).sqrt(), 2))
        })
        .collect()
}

fn drift_summary(raw: Vec<f64>, first: usize, appended: usize) -> Drift {
    let per_layer: Vec<f64> =
        raw.iter().map(|&x| if x < DRIFT_FLOOR { 0.0 } else { x }).collect();
    let max = per_layer.iter().copied().fold(0.0, f64::max);
    Drift {
        first_turn_tokens: first,
        appended_tokens: appended,
        floor: DRIFT_FLOOR,
        per_layer,
        max,
    }
}

/// Append the second turn to the first and compare the first turn's cached values
/// before and after, in both models.
fn drifts(
    lm: &SmolLm,
    encoder: &SentenceEncoder,
    first: &str,
    second: &str,
    cap: usize,
) -> anyhow::Result<(Drift, Drift)> {
    // Decoder: the first turn alone, then the first turn followed by the second.
    let (a, b) = (lm.encode(first)?, lm.encode(second)?);
    let trace = |ids: &[u32]| -> anyhow::Result<Vec<HeadTrace>> {
        let mut traces = Vec::new();
        let mut cache = Cache::new(&lm.model);
        lm.model.forward_hidden(&row(ids)?, &mut cache, Some(&mut traces))?;
        Ok(traces)
    };
    let both: Vec<u32> = a.iter().chain(&b).copied().collect();
    let decoder = drift(&trace(&a)?, &trace(&both)?, a.len())?;
    // Encoder: `[CLS] first [SEP]`, then `[CLS] first second [SEP]`.
    let tok = &encoder.tokenizer;
    let plain = |s: &str| -> anyhow::Result<Vec<u32>> {
        let ids = tok.encode(s, false).map_err(crate::Error::tokenizer)?;
        Ok(ids.get_ids().iter().copied().take(cap).collect())
    };
    let special =
        |t: &str| tok.token_to_id(t).with_context(|| format!("no {t} token"));
    let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
    let (ea, eb) = (plain(first)?, plain(second)?);
    let one: Vec<u32> = [cls].iter().chain(&ea).chain(&[sep]).copied().collect();
    let two: Vec<u32> =
        [cls].iter().chain(&ea).chain(&eb).chain(&[sep]).copied().collect();
    let enc_trace = |ids: &[u32]| -> anyhow::Result<Vec<HeadTrace>> {
        let r = row(ids)?;
        Ok(encoder.model.forward_traced(&r, &r.zeros_like()?, &r.ones_like()?)?.1)
    };
    let encoder_drift = drift(&enc_trace(&one)?, &enc_trace(&two)?, 1 + ea.len())?;
    Ok((
        drift_summary(decoder, a.len(), b.len()),
        drift_summary(encoder_drift, 1 + ea.len(), eb.len()),
    ))
}

/// The chat, kept and recomputed; decoding without any cache; the cache's size;
/// the drift of earlier tokens' values.
pub fn run(
    lm: &SmolLm,
    encoder: &SentenceEncoder,
    users: &[&str],
    max: usize,
    uncached: usize,
    encoder_cap: usize,
) -> anyhow::Result<(Chat, ChatTimes)> {
    let (kept, counts, mut kept_ms, cache) = chat(lm, users, max, true)?;
    let (recomputed, _, mut recomputed_ms, _) = chat(lm, users, max, false)?;
    // The clock is noisy at these sizes: the two chats alternate `TIMING_REPEATS`
    // times and each turn keeps its fastest time; every repeat must give the same
    // replies.
    let mut same = kept == recomputed;
    for _ in 1..TIMING_REPEATS {
        for (keep, times) in [(true, &mut kept_ms), (false, &mut recomputed_ms)] {
            let (replies, _, again, _) = chat(lm, users, max, keep)?;
            same &= replies == kept;
            for (t, a) in times.iter_mut().zip(again) {
                *t = (t.0.min(a.0), t.1.min(a.1));
            }
        }
    }

    // Decoding the first reply's first tokens with the cache and with no cache at
    // all, timed from the first generated token on (the prompt's prefill is the
    // same for both and not counted), fastest of `TIMING_REPEATS`.
    let prompt = lm.chat_prompt(users[0])?;
    let (mut cached_s, mut uncached_s) = (f64::INFINITY, f64::INFINITY);
    // Steps timed: every token after the first.
    let (mut cached, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..TIMING_REPEATS {
        let (ids, s) = decode_timed(lm, &prompt, uncached, true)?;
        (cached, cached_s) = (ids, cached_s.min(s));
        let (ids, s) = decode_timed(lm, &prompt, uncached, false)?;
        (plain, uncached_s) = (ids, uncached_s.min(s));
    }
    let steps = |ids: &[u32]| ids.len().saturating_sub(1) as f64;
    if steps(&cached) == 0.0 || steps(&plain) == 0.0 {
        anyhow::bail!(
            "the first reply ended after one token, so no decoding step could be timed"
        );
    }

    let c = &lm.model.config;
    let per_head = 2 * c.n_layers * c.head_dim * 4;
    let held = cache.bytes();
    let kv = KvSize {
        layers: c.n_layers,
        heads: c.n_heads,
        kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        bytes_per_token: per_head * c.n_kv_heads,
        bytes_held: held,
        tokens_held: cache.len(),
        bytes_per_token_measured: held / cache.len().max(1),
        bytes_per_token_without_gqa: per_head * c.n_heads,
        context_length: c.context_length,
        full_context_mib: round_dp(
            (per_head * c.n_kv_heads * c.context_length) as f64 / 1024.0 / 1024.0,
            0,
        ),
    };

    let text = |ids: &[u32]| -> anyhow::Result<String> {
        Ok(lm
            .tokenizer
            .decode(ids, true)
            .map_err(crate::Error::tokenizer)?
            .trim()
            .to_string())
    };
    let turns = users
        .iter()
        .zip(&kept)
        .zip(&counts)
        .map(|((user, ids), &(new_tokens, context_tokens))| {
            Ok(Turn {
                user: user.to_string(),
                reply: text(ids)?,
                new_tokens,
                context_tokens,
                reply_tokens: ids.len(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ([u1, u2, ..], [t1, t2, ..]) = (users, turns.as_slice()) else {
        anyhow::bail!("the chat needs at least two turns");
    };
    let first = format!("{u1} {}", t1.reply);
    let second = format!(" {u2} {}", t2.reply);
    let (decoder_drift, encoder_drift) =
        drifts(lm, encoder, &first, &second, encoder_cap)?;

    let (mut kc, mut rc) = (0.0, 0.0);
    let turn_times = kept_ms
        .iter()
        .zip(&recomputed_ms)
        .map(|(&(k, kp), &(r, rp))| {
            kc += k;
            rc += r;
            TurnTime {
                kept_prefill_ms: round_sig(kp, 3),
                recomputed_prefill_ms: round_sig(rp, 3),
                prefill_ratio: round_dp(rp / kp, 2),
                kept_ms: round_sig(k, 3),
                recomputed_ms: round_sig(r, 3),
                kept_cumulative_ms: round_sig(kc, 3),
                recomputed_cumulative_ms: round_sig(rc, 3),
                ratio: round_dp(r / k, 2),
            }
        })
        .collect();
    let times = ChatTimes {
        turns: turn_times,
        total_ratio: round_dp(rc / kc, 2),
        cached_tokens_per_s: round_sig(steps(&cached) / cached_s, 3),
        uncached_tokens_per_s: round_sig(steps(&plain) / uncached_s, 3),
        uncached_over_cached: round_dp(
            (uncached_s / steps(&plain)) / (cached_s / steps(&cached)),
            1,
        ),
    };
    let chat = Chat {
        turns,
        kept_equals_recomputed: same,
        uncached_equals_cached: plain == cached && kept[0].starts_with(&cached),
        uncached_tokens: plain.len(),
        kv,
        decoder_drift,
        encoder_drift,
    };
    Ok((chat, times))
}
