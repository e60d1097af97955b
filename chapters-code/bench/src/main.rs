//! How fast the shared library trains and decodes: tokens per second on the
//! reference model (`Config::tiny()`: vocab 512, d_model 128, 4 heads, 2 layers,
//! seq 64, batch 16), for the side-by-side comparison with PyTorch in
//! `ci/torch-reference/compare.sh`; and where a training step's time goes (`profile`,
//! `gemm`: the phases, the matrix products alone, the GEMM peak).

mod gemm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::{D, DType, IndexOp, Tensor};
use clap::{Parser, ValueEnum};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use transformer::kernels::{Kernels, Tuning, tune_process};
use transformer::loss::{masked_cross_entropy, token_nll_reference};
use transformer::model::Forward;
use transformer::rng::Rng;
use transformer::train::{StepLoss, TrainConfig, train};
use transformer::{Config, DEVICE, DecoderOnly, KvCache, MaskKind, ParamStore};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Tokens per second of training (forward, backward, AdamW).
    Train,
    /// Tokens per second of greedy decoding with the KV cache.
    Decode,
    /// Both.
    All,
    /// Training speed with the fast kernels switched on one after another, then
    /// both.
    Levers,
    /// The matrix products alone: the GEMM peak (512³) and one training step's
    /// products, each at its shape.
    Gemm,
    /// Where a training step's time goes: forward and loss, backward, optimiser.
    Profile,
    /// Nothing: only `--save-weights`.
    Save,
    /// Nothing measured: write the book's outputs from `--ours-json` and
    /// `--torch-json`.
    Report,
}

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// The reference model of the speed comparison (536,064 parameters).
    Tiny,
}

/// Tokens per second of training and of cached decoding.
#[derive(Parser)]
#[command(name = "bench", version)]
struct Cli {
    /// What to measure.
    #[arg(value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// The model. Chapter 4's configuration is not fixed yet: pass its shape with
    /// the `--d-model`, `--layers`, `--heads`, `--seq` and `--batch` overrides.
    #[arg(long, value_enum, default_value_t = Preset::Tiny)]
    config: Preset,
    /// Timed training steps (after the warm-up steps).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..))]
    steps: u32,
    /// Untimed training steps first.
    #[arg(long, default_value_t = 5)]
    warmup: u32,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    d_model: Option<u32>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    layers: Option<u32>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    heads: Option<u32>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    vocab: Option<u32>,
    /// Sequence length of training (and the model's maximum length).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    seq: Option<u32>,
    /// Sequences per training batch.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Sequences decoded side by side.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    decode_batch: u32,
    /// Prompt tokens before decoding (the rest of the maximum length is generated).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    prompt: u32,
    /// How many times the whole generation is repeated (timed).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    decode_reps: u32,
    /// Seed of the weights and of the random token batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train three steps, then save the weights here (safetensors), and beside them
    /// (`<PATH>.check.safetensors`) input ids and the logits we compute for them.
    #[arg(long)]
    save_weights: Option<PathBuf>,
    /// Write the raw measurements here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// PyTorch's measurements (written by `ci/torch-reference/torch_reference.py`).
    #[arg(long)]
    torch_json: Option<PathBuf>,
    /// Our measurements, written earlier with `--json` (mode `report`; repeat the
    /// flag to keep the best of several runs).
    #[arg(long)]
    ours_json: Vec<PathBuf>,
    /// The logits check written by `torch_reference.py check --out` (mode
    /// `report`).
    #[arg(long)]
    check_json: Option<PathBuf>,
    /// Rounds of the levers measurement (each configuration keeps its best round).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    lever_rounds: u32,
    /// Which levers to switch on (comma-separated names, `all` or `none`); default
    /// all.
    #[arg(long, default_value = "all")]
    levers: String,
    /// Write `results.json` and `speed.md` for the book into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Settings {
    cfg: Config,
    batch: usize,
    seq: usize,
    /// The loss through the fused cross-entropy kernel (else the reference).
    fused_loss: bool,
}

/// One optimisation the levers measurement switches on, in the order it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum Lever {
    /// No extra threads for candle's element-wise operations.
    CandleThreads,
    /// Keep freed memory in the process.
    KeepMemory,
    Linear,
    LayerNorm,
    Softmax,
    Gelu,
    CrossEntropy,
    Adamw,
    /// Attention straight from the fused QKV projection.
    Attention,
}

impl Lever {
    fn name(self) -> String {
        self.to_possible_value()
            .expect("no lever is skipped")
            .get_name()
            .to_string()
    }
}

/// What a list of levers switches on: process settings, kernels, the loss.
struct Levers {
    tuning: Tuning,
    kernels: Kernels,
    fused_loss: bool,
}

/// Parse `all`, `none` or a comma-separated list of lever names.
fn parse_levers(list: &str) -> anyhow::Result<Levers> {
    let on: Vec<Lever> = match list {
        "all" => Lever::value_variants().to_vec(),
        "none" => Vec::new(),
        _ => list
            .split(',')
            .map(|name| {
                Lever::from_str(name.trim(), false).map_err(|_| {
                    let known: Vec<String> =
                        Lever::value_variants().iter().map(|l| l.name()).collect();
                    anyhow::anyhow!(
                        "unknown lever {name:?}; known: {}, all, none",
                        known.join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let has = |l: Lever| on.contains(&l);
    Ok(Levers {
        tuning: Tuning {
            one_candle_thread: has(Lever::CandleThreads),
            keep_freed_memory: has(Lever::KeepMemory),
        },
        kernels: Kernels {
            linear: has(Lever::Linear),
            layer_norm: has(Lever::LayerNorm),
            softmax: has(Lever::Softmax),
            gelu: has(Lever::Gelu),
            attention: has(Lever::Attention),
            adamw: has(Lever::Adamw),
        },
        fused_loss: has(Lever::CrossEntropy),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainResult {
    tokens_per_s: f64,
    step_ms: f64,
    steps: usize,
    first_loss: f64,
    last_loss: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DecodeResult {
    tokens_per_s: f64,
    batch: usize,
    prompt: usize,
    new_tokens: usize,
    reps: usize,
}

/// Milliseconds per training step in each phase, and the FLOP rate of the whole
/// step.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProfileResult {
    forward_ms: f64,
    backward_ms: f64,
    optimizer_ms: f64,
    step_ms: f64,
    /// FLOPs of the step's matrix products (three times the forward pass's).
    step_gflop: f64,
    gflops: f64,
    /// Tensors in the step's graph, their values, and a lower bound on the time
    /// candle's backward pass spends on its gradient bookkeeping: each tensor's
    /// gradient starts as `zeros_like` when its first contribution arrives, and
    /// every contribution is added to it as a new tensor. Timed here as one zero
    /// fill and one addition per tensor, on the same shapes (a tensor used twice
    /// gets two additions in a real backward pass).
    graph_nodes: usize,
    graph_values: usize,
    bookkeeping_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeverResult {
    name: String,
    tokens_per_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Measured {
    threads: usize,
    params: usize,
    config: Option<Config>,
    batch: usize,
    seq: usize,
    train: Option<TrainResult>,
    decode: Option<DecodeResult>,
    levers: Vec<LeverResult>,
    #[serde(default)]
    cpu: String,
    /// Rounds of the levers measurement (each configuration keeps its best).
    #[serde(default)]
    lever_rounds: usize,
    gemm: Option<gemm::GemmResult>,
    profile: Option<ProfileResult>,
}

/// What `torch_reference.py time` writes.
#[derive(Debug, Clone, Deserialize)]
struct TorchResults {
    #[serde(default)]
    cpu: String,
    torch_version: String,
    threads: usize,
    train: Option<TrainResult>,
    decode: Option<DecodeResult>,
    /// GFLOP/s of numpy's and PyTorch's 512³ `f32` product on the same threads.
    #[serde(default)]
    numpy_peak_gflops: Option<f64>,
    #[serde(default)]
    torch_peak_gflops: Option<f64>,
}

/// PyTorch's training and decoding speeds in tokens per second, where it measured
/// them.
fn torch_tokens_per_s(torch: Option<&TorchResults>) -> (Option<f64>, Option<f64>) {
    let train = torch.and_then(|t| t.train.as_ref()).map(|t| t.tokens_per_s);
    let decode = torch.and_then(|t| t.decode.as_ref()).map(|t| t.tokens_per_s);
    (train, decode)
}

/// The line under one of our measurements that compares it with PyTorch's, if
/// there is one.
fn print_against_torch(ours: f64, torch: Option<f64>) {
    if let Some(t) = torch {
        println!(
            "        PyTorch {t:.0} tokens/s; ours / PyTorch = {:.2}",
            ours / t
        );
    }
}

fn settings(cli: &Cli, levers: &Levers) -> anyhow::Result<Settings> {
    let mut cfg = match cli.config {
        Preset::Tiny => Config::tiny(),
    };
    cfg.kernels = levers.kernels;
    if let Some(d) = cli.d_model {
        cfg.d_model = d as usize;
        cfg.d_ff = 4 * d as usize;
    }
    if let Some(l) = cli.layers {
        cfg.n_layers = l as usize;
    }
    if let Some(h) = cli.heads {
        cfg.n_heads = h as usize;
        cfg.n_kv_heads = h as usize;
    }
    if let Some(v) = cli.vocab {
        cfg.vocab_size = v as usize;
    }
    if let Some(s) = cli.seq {
        cfg.max_len = s as usize;
    }
    cfg.validate()?;
    if cli.prompt as usize >= cfg.max_len {
        anyhow::bail!(
            "--prompt ({}) must be shorter than the sequence ({})",
            cli.prompt,
            cfg.max_len
        );
    }
    Ok(Settings {
        seq: cfg.max_len,
        batch: cli.batch as usize,
        cfg,
        fused_loss: levers.fused_loss,
    })
}

/// `batch` random sequences of `seq + 1` tokens: inputs are the first `seq`,
/// targets the last.
fn random_batch(
    r: &mut Rng,
    batch: usize,
    seq: usize,
    vocab: usize,
) -> anyhow::Result<(Tensor, Tensor)> {
    let all: Vec<u32> =
        (0..batch * (seq + 1)).map(|_| r.random_range(0..vocab as u32)).collect();
    let t = Tensor::from_vec(all, (batch, seq + 1), &DEVICE)?;
    Ok((t.narrow(1, 0, seq)?.contiguous()?, t.narrow(1, 1, seq)?.contiguous()?))
}

fn train_config(steps: usize, seed: u64, kernels: Kernels) -> TrainConfig {
    TrainConfig {
        steps,
        kernels,
        lr: 1e-3,
        warmup: 2,
        seed,
        progress: false,
        ..TrainConfig::default()
    }
}

/// The reference model and its parameters, initialised from `seed`.
fn new_model(s: &Settings, seed: u64) -> anyhow::Result<(ParamStore, DecoderOnly)> {
    let store = ParamStore::new(seed);
    let model = DecoderOnly::new(&s.cfg, store.vb().pp("gpt"))?;
    Ok((store, model))
}

/// The mean next-token loss, through the fused cross-entropy kernel or the
/// reference (the `cross_entropy` lever).
fn loss_of(
    s: &Settings,
    logits: &Tensor,
    y: &Tensor,
    ones: &Tensor,
) -> anyhow::Result<Tensor> {
    Ok(match s.fused_loss {
        true => masked_cross_entropy(logits, y, ones)?,
        false => token_nll_reference(logits, y)?.mean_all()?,
    })
}

fn bench_train(
    s: &Settings,
    steps: usize,
    warmup: usize,
    seed: u64,
) -> anyhow::Result<TrainResult> {
    let (store, model) = new_model(s, seed)?;
    let ones = Tensor::ones((s.batch, s.seq), DType::F32, &DEVICE)?;
    let mut starts = Vec::new();
    let log = train(
        &store,
        &train_config(warmup + steps, seed, s.cfg.kernels),
        |_, r| {
            starts.push(Instant::now());
            let (x, y) = random_batch(r, s.batch, s.seq, s.cfg.vocab_size)?;
            let logits = model.forward(&x, &MaskKind::Causal)?;
            let loss = loss_of(s, &logits, &y, &ones)?;
            Ok(StepLoss {
                loss,
                tokens_seen: s.batch * s.seq,
                tokens_supervised: s.batch * s.seq,
            })
        },
        |_| Ok(0.0),
    )?;
    let secs = starts[warmup].elapsed().as_secs_f64();
    Ok(TrainResult {
        tokens_per_s: (steps * s.batch * s.seq) as f64 / secs,
        step_ms: 1e3 * secs / steps as f64,
        steps,
        first_loss: log.steps[0].loss,
        last_loss: log.steps.last().map_or(f64::NAN, |l| l.loss),
    })
}

/// The training step of [`bench_train`] written out, each phase timed: the batch,
/// forward pass and loss; the backward pass; gradient clipping and AdamW. Means over
/// the timed steps.
fn bench_profile(
    s: &Settings,
    steps: usize,
    warmup: usize,
    seed: u64,
) -> anyhow::Result<ProfileResult> {
    let (store, model) = new_model(s, seed)?;
    let cfg = train_config(warmup + steps, seed, s.cfg.kernels);
    let mut opt = transformer::train::AdamW::new(&store, &cfg)?;
    let mut data = transformer::rng::stream(seed, "data");
    let ones = Tensor::ones((s.batch, s.seq), DType::F32, &DEVICE)?;
    let (mut fwd, mut bwd, mut upd, mut flop) = (0.0, 0.0, 0.0, 0u64);
    for step in 0..warmup + steps {
        let t0 = Instant::now();
        let (x, y) = random_batch(&mut data, s.batch, s.seq, s.cfg.vocab_size)?;
        let (loss, f) = transformer::flops::count(|| -> anyhow::Result<Tensor> {
            let logits = model.forward(&x, &MaskKind::Causal)?;
            loss_of(s, &logits, &y, &ones)
        });
        let loss = loss?;
        loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads, cfg.lr_at(step))?;
        drop(grads);
        let t3 = Instant::now();
        if step >= warmup {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            upd += (t3 - t2).as_secs_f64();
            flop += 3 * f;
        }
    }
    // One more forward pass, untimed, whose graph is measured.
    let (x, y) = random_batch(&mut data, s.batch, s.seq, s.cfg.vocab_size)?;
    let loss = loss_of(s, &model.forward(&x, &MaskKind::Causal)?, &y, &ones)?;
    let (graph_nodes, graph_values, bookkeeping) = time_bookkeeping(&loss)?;
    let n = steps as f64;
    let step_secs = (fwd + bwd + upd) / n;
    Ok(ProfileResult {
        forward_ms: 1e3 * fwd / n,
        backward_ms: 1e3 * bwd / n,
        optimizer_ms: 1e3 * upd / n,
        step_ms: 1e3 * step_secs,
        step_gflop: flop as f64 / n / 1e9,
        gflops: flop as f64 / n / step_secs / 1e9,
        graph_nodes,
        graph_values,
        bookkeeping_ms: 1e3 * bookkeeping,
    })
}

/// The nodes of `loss`'s graph, their values, and the seconds (best of five) of
/// one `zeros_like` and one addition per node: what candle's backward pass does to
/// start and accumulate each gradient, whatever the ops.
fn time_bookkeeping(loss: &Tensor) -> anyhow::Result<(usize, usize, f64)> {
    let nodes = loss.sorted_nodes();
    let values = nodes.iter().map(|n| n.elem_count()).sum();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for n in &nodes {
            let sum = n.zeros_like()?.add(&n.detach())?;
            std::hint::black_box(sum);
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((nodes.len(), values, best))
}

/// The matrix products of `s`'s model alone (see [`gemm`]).
fn bench_gemm(s: &Settings, threads: usize) -> gemm::GemmResult {
    gemm::measure(gemm::Model::of(&s.cfg, s.batch, s.seq), threads)
}

/// Greedy decoding with the KV cache: a random prompt, then one token at a time up
/// to the model's maximum length. The prompt's forward pass is part of the timed
/// work.
fn bench_decode(
    s: &Settings,
    batch: usize,
    prompt: usize,
    reps: usize,
    seed: u64,
) -> anyhow::Result<DecodeResult> {
    let (_store, model) = new_model(s, seed)?;
    let mut r = transformer::rng::stream(seed, "prompt");
    let new_tokens = s.seq - prompt;
    let generate = |ids: &Tensor| -> anyhow::Result<Vec<u32>> {
        let mut cache: Vec<KvCache> = Vec::new();
        let mut input = ids.clone();
        let mut out = Vec::with_capacity(new_tokens * batch);
        for _ in 0..new_tokens {
            let logits = model
                .run(
                    &input,
                    &MaskKind::Causal,
                    Forward { cache: Some(&mut cache), trace: false },
                )?
                .logits;
            let t = logits.dim(1)?;
            let next = logits.i((.., t - 1, ..))?.argmax(D::Minus1)?;
            out.extend(next.to_vec1::<u32>()?);
            input = next.unsqueeze(1)?;
        }
        Ok(out)
    };
    let prompts: Vec<Tensor> = (0..reps + 1)
        .map(|_| {
            random_batch(&mut r, batch, prompt, s.cfg.vocab_size).map(|(x, _)| x)
        })
        .collect::<anyhow::Result<_>>()?;
    generate(&prompts[0])?;
    let start = Instant::now();
    for p in &prompts[1..] {
        generate(p)?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(DecodeResult {
        tokens_per_s: (reps * batch * new_tokens) as f64 / secs,
        batch,
        prompt,
        new_tokens,
        reps,
    })
}

/// Train three steps (so no parameter keeps its initial value), save the weights,
/// and save input ids with the logits we compute for them, for the PyTorch equality
/// check.
fn save_weights(s: &Settings, path: &Path, seed: u64) -> anyhow::Result<()> {
    let (store, model) = new_model(s, seed)?;
    let ones = Tensor::ones((s.batch, s.seq), DType::F32, &DEVICE)?;
    train(
        &store,
        &TrainConfig { lr: 1e-2, ..train_config(3, seed, s.cfg.kernels) },
        |_, r| {
            let (x, y) = random_batch(r, s.batch, s.seq, s.cfg.vocab_size)?;
            let loss = masked_cross_entropy(
                &model.forward(&x, &MaskKind::Causal)?,
                &y,
                &ones,
            )?;
            Ok(StepLoss { loss, tokens_seen: 0, tokens_supervised: 0 })
        },
        |_| Ok(0.0),
    )?;
    store.save(path)?;
    let (x, y) = random_batch(
        &mut transformer::rng::stream(seed, "check"),
        4,
        s.seq,
        s.cfg.vocab_size,
    )?;
    let logits = model.forward(&x, &MaskKind::Causal)?;
    let loss = masked_cross_entropy(
        &logits,
        &y,
        &Tensor::ones((4, s.seq), DType::F32, &DEVICE)?,
    )?;
    let check: HashMap<String, Tensor> = [
        ("ids".to_string(), x.to_dtype(DType::I64)?),
        ("targets".to_string(), y.to_dtype(DType::I64)?),
        ("logits".to_string(), logits),
        ("loss".to_string(), loss.reshape(1)?),
    ]
    .into();
    let check_path = PathBuf::from(format!("{}.check.safetensors", path.display()));
    candle_core::safetensors::save(&check, &check_path)
        .with_context(|| format!("writing {}", check_path.display()))?;
    println!(
        "weights: {} ({} parameters); check: {}",
        path.display(),
        store.num_params(),
        check_path.display()
    );
    Ok(())
}

/// Training speed with the levers switched on cumulatively, in [`Lever`]'s
/// order. Some levers act once per process, so each configuration runs in a fresh
/// child process.
fn bench_levers(cli: &Cli) -> anyhow::Result<Vec<LeverResult>> {
    let exe = std::env::current_exe()?;
    let mut out: Vec<LeverResult> = Vec::new();
    for round in 0..cli.lever_rounds as usize {
        let all = Lever::value_variants();
        for k in 0..=all.len() {
            let on: Vec<String> = all[..k].iter().map(|l| l.name()).collect();
            let json = std::env::temp_dir()
                .join(format!("bench-levers-{}-{k}.json", std::process::id()));
            let mut cmd = std::process::Command::new(&exe);
            // Each child sets candle's thread count itself when its levers include
            // `candle_threads`; without them it must see candle's default, not the
            // value this process (or `.cargo/config.toml`) set.
            cmd.env_remove("CANDLE_NUM_THREADS");
            cmd.args([
                "train",
                "--steps",
                &cli.steps.to_string(),
                "--warmup",
                &cli.warmup.to_string(),
            ])
            .args([
                "--batch",
                &cli.batch.to_string(),
                "--seed",
                &cli.seed.to_string(),
            ])
            .arg("--levers")
            .arg(if on.is_empty() { "none".to_string() } else { on.join(",") })
            .arg("--json")
            .arg(&json);
            for (flag, v) in [
                ("--d-model", cli.d_model),
                ("--layers", cli.layers),
                ("--heads", cli.heads),
                ("--vocab", cli.vocab),
                ("--seq", cli.seq),
            ] {
                if let Some(v) = v {
                    cmd.args([flag, &v.to_string()]);
                }
            }
            let status = cmd.stdout(std::process::Stdio::null()).status()?;
            anyhow::ensure!(
                status.success(),
                "the child run with levers {on:?} failed"
            );
            let m: Measured =
                serde_json::from_str(&std::fs::read_to_string(&json)?)?;
            std::fs::remove_file(&json).ok();
            let tps =
                m.train.context("child wrote no training result")?.tokens_per_s;
            let name = match k {
                0 => "no levers".to_string(),
                _ => format!("+ {}", all[k - 1].name()),
            };
            println!("  {name:<18} {tps:>9.0} tokens/s");
            // Other processes only slow a run down: keep each configuration's best
            // round.
            match out.get_mut(k) {
                Some(best) => best.tokens_per_s = best.tokens_per_s.max(tps),
                None => out.push(LeverResult { name, tokens_per_s: tps }),
            }
        }
        if round + 1 < cli.lever_rounds as usize {
            println!("  (next round)");
        }
    }
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not what was expected", p.display()))
}

/// Several runs of ours in one: other processes only slow a run down, so keep the
/// best training and the best decoding measurement; the levers come from the run
/// that has them.
fn merge_best(paths: &[PathBuf]) -> anyhow::Result<Measured> {
    let runs: Vec<Measured> =
        paths.iter().map(|p| read_json(p)).collect::<anyhow::Result<_>>()?;
    let mut best = Measured { profile: None, gemm: None, ..runs[0].clone() };
    if let Some(r) =
        runs.iter().find(|r| (&r.cpu, r.threads) != (&best.cpu, best.threads))
    {
        anyhow::bail!(
            "the measurements come from different machines or thread counts ({:?} on {} threads, {:?} on {})",
            best.cpu,
            best.threads,
            r.cpu,
            r.threads
        );
    }
    for r in &runs {
        if r.train.as_ref().map(|t| t.tokens_per_s)
            > best.train.as_ref().map(|t| t.tokens_per_s)
        {
            best.train = r.train.clone();
        }
        if r.decode.as_ref().map(|t| t.tokens_per_s)
            > best.decode.as_ref().map(|t| t.tokens_per_s)
        {
            best.decode = r.decode.clone();
        }
        if best.levers.is_empty() {
            best.levers = r.levers.clone();
            best.lever_rounds = r.lever_rounds;
        }
        // The fastest profiled step, with the GEMM measurement of the same run, so
        // that the shares of the step and of the peak are ratios within one process.
        if r.profile.is_some()
            && r.profile.as_ref().map(|p| -p.step_ms)
                > best.profile.as_ref().map(|p| -p.step_ms)
        {
            best.profile = r.profile.clone();
            best.gemm = r.gemm.clone();
        }
    }
    Ok(best)
}

/// The levers run as JSON: each configuration's tokens/s, its gain over the
/// previous one and over no levers, and (by name) the overall gain.
fn lever_summary(levers: &[LeverResult], rounds: usize) -> serde_json::Value {
    use transformer::chapter::round_dp;
    let Some(first) = levers.first().map(|l| l.tokens_per_s) else {
        return serde_json::Value::Null;
    };
    let last = levers.last().map_or(first, |l| l.tokens_per_s);
    let mut prev = first;
    let rows: Vec<_> = levers
        .iter()
        .map(|l| {
            let row = serde_json::json!({
                "name": l.name,
                "tokens_per_s": round_dp(l.tokens_per_s, 0),
                "gain": round_dp(l.tokens_per_s / prev, 2),
                "total_gain": round_dp(l.tokens_per_s / first, 2),
            });
            prev = l.tokens_per_s;
            row
        })
        .collect();
    serde_json::json!({
        "none_tokens_per_s": round_dp(first, 0),
        "all_tokens_per_s": round_dp(last, 0),
        "total_gain": round_dp(last / first, 1),
        "rounds": rounds,
        "candle_threads_gain": levers
            .iter()
            .position(|l| l.name == format!("+ {}", Lever::CandleThreads.name()))
            .filter(|&i| i > 0)
            .map(|i| round_dp(levers[i].tokens_per_s / levers[i - 1].tokens_per_s, 2)),
        "rows": rows,
    })
}

/// Where a training step's time goes, as JSON (rounded for the book), when both
/// the profile and the GEMM measurement ran.
fn profile_summary(m: &Measured) -> serde_json::Value {
    use transformer::chapter::round_dp;
    let (Some(p), Some(g)) = (&m.profile, &m.gemm) else {
        return serde_json::Value::Null;
    };
    serde_json::json!({
        "step_ms": round_dp(p.step_ms, 1),
        "forward_ms": round_dp(p.forward_ms, 1),
        "backward_ms": round_dp(p.backward_ms, 1),
        "optimizer_ms": round_dp(p.optimizer_ms, 1),
        "step_gflop": round_dp(p.step_gflop, 2),
        "gflops": whole(p.gflops),
        "peak_percent": whole(100.0 * p.gflops / g.peak),
        "products_ms": round_dp(g.step_ms, 1),
        "products_ms_cold": round_dp(g.step_ms_cold, 1),
        "products_percent": whole(100.0 * g.step_ms / p.step_ms),
        "products_peak_percent": whole(100.0 * g.step_gflops / g.peak),
        "graph_nodes": p.graph_nodes,
        "graph_values": p.graph_values,
        "bookkeeping_ms": round_dp(p.bookkeeping_ms, 1),
    })
}

/// The profile as a table: the step's phases, then what its products and candle's
/// gradient bookkeeping alone take.
fn profile_table(m: &Measured) -> Option<String> {
    let (p, g) = (m.profile.as_ref()?, m.gemm.as_ref()?);
    let share = |ms: f64| format!("{:.0}%", 100.0 * ms / p.step_ms);
    let mut md = String::from(
        "| one training step | ms | share of the step |\n|---|---:|---:|\n",
    );
    for (what, ms) in [
        ("forward pass and loss", p.forward_ms),
        ("backward pass", p.backward_ms),
        ("gradient clipping and AdamW", p.optimizer_ms),
        ("**the whole step**", p.step_ms),
        ("*its matrix products alone, operands in cache*", g.step_ms),
        (
            "*its matrix products alone, large operands evicted from the cache*",
            g.step_ms_cold,
        ),
        (
            "*candle's gradient bookkeeping, a lower bound (one zeros_like + add per tensor)*",
            p.bookkeeping_ms,
        ),
    ] {
        md += &format!("| {what} | {ms:.1} | {} |\n", share(ms));
    }
    Some(md)
}

/// A measurement rounded to a whole number, as the book prints it.
fn whole(x: f64) -> i64 {
    x.round() as i64
}

/// How the book words a ratio of ours to PyTorch's speed, as the book prints it
/// (two decimals).
fn comparison(ratio: f64) -> &'static str {
    let r = transformer::chapter::round_dp(ratio, 2);
    if r > 1.0 {
        "faster than"
    } else if r < 1.0 {
        "slower than"
    } else {
        "as fast as"
    }
}

fn ratio(ours: f64, theirs: Option<f64>) -> Option<f64> {
    theirs.filter(|t| *t > 0.0).map(|t| ours / t)
}

fn write_book_outputs(
    m: &Measured,
    torch: Option<&TorchResults>,
    check: Option<&serde_json::Value>,
    dir: &Path,
) -> anyhow::Result<()> {
    use transformer::chapter::round_dp;
    let (tt, td) = torch_tokens_per_s(torch);
    let train = m
        .train
        .as_ref()
        .context("the book's outputs need the training measurement (mode all)")?;
    let decode = m
        .decode
        .as_ref()
        .context("the book's outputs need the decoding measurement (mode all)")?;
    let results = serde_json::json!({
        "threads": m.threads,
        "params": m.params,
        "batch": m.batch,
        "seq": m.seq,
        "torch_version": torch.map(|t| t.torch_version.clone()),
        "torch_threads": torch.map(|t| t.threads),
        "check": check.map(|c| serde_json::json!({
            "max_abs_diff": c["max_abs_diff"].as_f64().map(|d| format!("{d:.1e}")),
            "values": c["values"],
        })),
        "train": {
            "tokens_per_s": round_dp(train.tokens_per_s, 0),
            "step_ms": round_dp(train.step_ms, 1),
            "torch_tokens_per_s": tt.map(|x| round_dp(x, 0)),
            "ratio": ratio(train.tokens_per_s, tt).map(|x| round_dp(x, 2)),
            "comparison": ratio(train.tokens_per_s, tt).map(comparison),
        },
        "decode": {
            "tokens_per_s": round_dp(decode.tokens_per_s, 0),
            "batch": decode.batch,
            "new_tokens": decode.new_tokens,
            "torch_tokens_per_s": td.map(|x| round_dp(x, 0)),
            "ratio": ratio(decode.tokens_per_s, td).map(|x| round_dp(x, 2)),
            "comparison": ratio(decode.tokens_per_s, td).map(comparison),
        },
        "levers": lever_summary(&m.levers, m.lever_rounds),
        "model": m.config.as_ref().map(|c| serde_json::json!({
            "vocab": c.vocab_size,
            "d_model": c.d_model,
            "heads": c.n_heads,
            "layers": c.n_layers,
        })),
        "machine": {
            "cpu": m.cpu,
            "gemm_kernel": m.gemm.as_ref().map(|g| g.kernel.clone()),
            "gemm_peak_gflops": m.gemm.as_ref().map(|g| whole(g.peak)),
            "numpy_peak_gflops": torch.and_then(|t| t.numpy_peak_gflops).map(whole),
            "torch_peak_gflops": torch.and_then(|t| t.torch_peak_gflops).map(whole),
        },
        "profile": profile_summary(m),
    });
    transformer::io::write_json(&dir.join("results.json"), &results)?;
    let md = profile_table(m)
        .context("the book's outputs need a profile run (mode profile)")?;
    transformer::io::write_text(&dir.join("profile.md"), &md)?;
    let fmt_ratio =
        |r: Option<f64>| r.map_or("–".to_string(), |r| format!("{r:.2}×"));
    let fmt_tps =
        |r: Option<f64>| r.map_or("–".to_string(), |r| format!("{r:.0}"));
    let mut md = String::from(
        "| what | this library (tokens/s) | PyTorch (tokens/s) | ratio |\n|---|---:|---:|---:|\n",
    );
    md += &format!(
        "| training, batch {} × {} tokens | {:.0} | {} | {} |\n",
        m.batch,
        m.seq,
        train.tokens_per_s,
        fmt_tps(tt),
        fmt_ratio(ratio(train.tokens_per_s, tt))
    );
    md += &format!(
        "| greedy decoding with KV cache, batch {} | {:.0} | {} | {} |\n",
        decode.batch,
        decode.tokens_per_s,
        fmt_tps(td),
        fmt_ratio(ratio(decode.tokens_per_s, td))
    );
    transformer::io::write_text(&dir.join("speed.md"), &md)?;
    if !m.levers.is_empty() {
        let mut md = String::from(
            "| training, levers switched on | tokens/s | × the row above | × no levers |\n|---|---:|---:|---:|\n",
        );
        let first = m.levers[0].tokens_per_s;
        let mut prev = first;
        for l in &m.levers {
            md += &format!(
                "| {} | {:.0} | {:.2}× | {:.2}× |\n",
                l.name,
                l.tokens_per_s,
                l.tokens_per_s / prev,
                l.tokens_per_s / first
            );
            prev = l.tokens_per_s;
        }
        transformer::io::write_text(&dir.join("levers.md"), &md)?;
    }
    Ok(())
}

fn run(cli: Cli, levers: &Levers) -> anyhow::Result<()> {
    let s = settings(&cli, levers)?;
    let (steps, warmup) = (cli.steps as usize, cli.warmup as usize);
    let params = s.cfg.decoder_only_params();
    let threads = candle_core::utils::get_num_threads();
    println!(
        "model: vocab {}, d_model {}, {} heads, {} layers, seq {}, batch {}; {params} parameters; {threads} threads",
        s.cfg.vocab_size,
        s.cfg.d_model,
        s.cfg.n_heads,
        s.cfg.n_layers,
        s.seq,
        s.batch
    );
    if let Some(path) = &cli.save_weights {
        save_weights(&s, path, cli.seed)?;
    }
    let torch: Option<TorchResults> = match &cli.torch_json {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not PyTorch's results", p.display()))?,
        ),
        None => None,
    };
    let (torch_train, torch_decode) = torch_tokens_per_s(torch.as_ref());
    let cpu = support::cpu_name();
    println!("cpu: {cpu}");
    let mut m = Measured {
        cpu,
        threads,
        params,
        config: Some(s.cfg.clone()),
        batch: s.batch,
        seq: s.seq,
        ..Default::default()
    };
    if cli.mode == Mode::Report {
        anyhow::ensure!(!cli.ours_json.is_empty(), "mode report needs --ours-json");
        m = merge_best(&cli.ours_json)?;
        if let Some(t) = &torch {
            anyhow::ensure!(
                t.cpu == m.cpu && t.threads == m.threads,
                "PyTorch ran on {:?} with {} threads, ours on {:?} with {}: not one machine",
                t.cpu,
                t.threads,
                m.cpu,
                m.threads
            );
        }
        for (what, ours, theirs) in [
            ("train", m.train.as_ref().map(|t| t.tokens_per_s), torch_train),
            ("decode", m.decode.as_ref().map(|t| t.tokens_per_s), torch_decode),
        ] {
            if let (Some(o), Some(t)) = (ours, theirs) {
                println!(
                    "{what}: ours {o:.0} tokens/s, PyTorch {t:.0} tokens/s, ours / PyTorch = {:.2}",
                    o / t
                );
            }
        }
    }
    if matches!(cli.mode, Mode::Levers) {
        m.levers = bench_levers(&cli)?;
        m.lever_rounds = cli.lever_rounds as usize;
    }
    if matches!(cli.mode, Mode::Train | Mode::All | Mode::Levers) {
        let r = bench_train(&s, steps, warmup, cli.seed)?;
        println!(
            "train:  {:>9.0} tokens/s  ({:.1} ms/step, loss {:.3} -> {:.3})",
            r.tokens_per_s, r.step_ms, r.first_loss, r.last_loss
        );
        print_against_torch(r.tokens_per_s, torch_train);
        m.train = Some(r);
    }
    if matches!(cli.mode, Mode::Profile) {
        let p = bench_profile(&s, steps, warmup, cli.seed)?;
        println!(
            "profile: {:.1} ms/step = forward and loss {:.1} + backward {:.1} + optimiser {:.1}; {:.2} GFLOP per step, {:.0} GFLOP/s",
            p.step_ms,
            p.forward_ms,
            p.backward_ms,
            p.optimizer_ms,
            p.step_gflop,
            p.gflops
        );
        println!(
            "         the graph has {} tensors with {} values; starting and adding up their gradients (zeros_like + add) takes at least {:.1} ms",
            p.graph_nodes, p.graph_values, p.bookkeeping_ms
        );
        m.profile = Some(p);
    }
    if matches!(cli.mode, Mode::Gemm | Mode::Profile) {
        let g = bench_gemm(&s, threads);
        println!(
            "gemm: {} kernels; 512³ f32 product {:.0} GFLOP/s on 1 thread, {:.0} on {threads}",
            g.kernel, g.peak_1_thread, g.peak
        );
        if cli.mode == Mode::Gemm {
            for r in &g.rows {
                println!(
                    "  {:<9} {:>5} × {:>4} × {:>4} (×{}) {:>6.0} GFLOP/s",
                    r.what, r.m, r.n, r.k, r.per_step, r.gflops
                );
            }
        }
        println!(
            "      one training step's products, each timed alone: {:.1} ms, {:.0} GFLOP/s ({:.0}% of the peak); {:.1} ms with cold caches",
            g.step_ms,
            g.step_gflops,
            100.0 * g.step_gflops / g.peak,
            g.step_ms_cold
        );
        if let Some(p) = &m.profile {
            println!(
                "      the whole step reaches {:.0}% of the peak; its products alone would take {:.0}% of it",
                100.0 * p.gflops / g.peak,
                100.0 * g.step_ms / p.step_ms
            );
        }
        m.gemm = Some(g);
    }
    if matches!(cli.mode, Mode::Decode | Mode::All | Mode::Levers) {
        let r = bench_decode(
            &s,
            cli.decode_batch as usize,
            cli.prompt as usize,
            cli.decode_reps as usize,
            cli.seed,
        )?;
        println!(
            "decode: {:>9.0} tokens/s  (batch {}, {} new tokens after a {}-token prompt)",
            r.tokens_per_s, r.batch, r.new_tokens, r.prompt
        );
        print_against_torch(r.tokens_per_s, torch_decode);
        m.decode = Some(r);
    }
    if let Some(p) = &cli.json {
        transformer::io::write_json(p, &m)?;
    }
    if let Some(dir) = &cli.out {
        let check: Option<serde_json::Value> =
            cli.check_json.as_deref().map(read_json).transpose()?;
        write_book_outputs(&m, torch.as_ref(), check.as_ref(), dir)?;
        println!(
            "wrote results.json, speed.md, levers.md and profile.md to {}",
            dir.display()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let levers = match parse_levers(&cli.levers) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // First, before candle starts its threads (see `tune_process`).
    tune_process(levers.tuning);
    match run(cli, &levers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
