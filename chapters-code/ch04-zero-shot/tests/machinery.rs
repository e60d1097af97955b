//! The machinery, not the outcome: scoring, the held-out split, the baselines and
//! the phases' checkpoints do what the page says, on small models and the quick
//! configuration's data.

use std::sync::OnceLock;

use ch04_zero_shot::*;
use rand::Rng as _;
use transformer::ParamStore;
use transformer::chapter::Preset;
use transformer::corpus::TaskFamily;
use transformer::rng;
use transformer::train::{self, StepLoss, TrainConfig};

fn settings() -> Settings {
    Settings::new(Preset::Quick, &Args::default()).unwrap()
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| data::build(&settings()).unwrap())
}

fn model(arch: Arch, seed: u64) -> (ParamStore, Net) {
    let store = ParamStore::new(seed);
    let net =
        Net::new(&store, arch, &settings().model_config(data().tok.vocab_size()))
            .unwrap();
    (store, net)
}

/// Items of three one-token options. With `planted`, the answer fills half of the
/// prompt's positions (the rest are other tokens, each at most once), so it is the
/// prompt's most frequent token; without, the prompt never contains it.
fn items(r: &mut rng::Rng, count: usize, planted: bool) -> Vec<EvalItem> {
    let first = data().tok.specials.first_regular();
    let draw = |r: &mut rng::Rng, taken: &mut Vec<u32>| loop {
        let t = r.random_range(first..first + 200);
        if !taken.contains(&t) {
            taken.push(t);
            return t;
        }
    };
    (0..count)
        .map(|i| {
            let mut taken = Vec::new();
            let options: Vec<Vec<u32>> =
                (0..3).map(|_| vec![draw(r, &mut taken)]).collect();
            let answer = r.random_range(0..3);
            let prompt: Vec<u32> = (0..12)
                .map(|j| {
                    if planted && j % 2 == 1 {
                        options[answer][0]
                    } else {
                        draw(r, &mut taken)
                    }
                })
                .collect();
            EvalItem {
                family: TaskFamily::Colour,
                instance: i,
                template: 0,
                prompt,
                option_bytes: vec![4; 3],
                options,
                answer,
                cue: vec![first],
            }
        })
        .collect()
}

#[test]
fn scoring_picks_the_planted_answer_a_model_was_taught_to_find() {
    // Teach each architecture to answer with the prompt's most frequent token, then
    // plant it.
    for arch in [Arch::Causal, Arch::NonCausal, Arch::EncDec] {
        let (store, net) = model(arch, 1);
        let sp = data().tok.specials;
        let cfg = TrainConfig {
            steps: 150,
            lr: 1e-2,
            warmup: 10,
            progress: false,
            ..TrainConfig::default()
        };
        train::train(
            &store,
            &cfg,
            |_, r| {
                let pairs: Vec<(Vec<u32>, Vec<u32>)> = items(r, 16, true)
                    .into_iter()
                    .map(|it| (it.prompt.clone(), it.options[it.answer].clone()))
                    .collect();
                let b = net.prompted_nll(arch, &pairs, &sp)?.mean()?;
                Ok(StepLoss {
                    loss: b.loss,
                    tokens_seen: 0,
                    tokens_supervised: b.tokens_supervised,
                })
            },
            |_| Ok(0.0),
        )
        .unwrap();
        let items = items(&mut rng::seeded(99), 60, true);
        let e = evaluate(&net, arch, &items, &sp).unwrap();
        let right = e.picks.iter().filter(|p| p.correct).count();
        assert!(right >= 57, "{arch:?}: only {right} of 60 planted answers picked");
    }
}

#[test]
fn an_untrained_model_is_right_at_the_rate_of_chance() {
    // A model that knows nothing picks by its biases, which are unrelated to which
    // option is the answer: over many items its accuracy is the random baseline,
    // within sampling noise. (The answer is kept out of the prompt: with tied
    // embeddings, an untrained model already favours repeating the token it has
    // just read.)
    let items = items(&mut rng::seeded(7), 600, false);
    for arch in [Arch::Causal, Arch::EncDec] {
        let (_, net) = model(arch, 3);
        let e = evaluate(&net, arch, &items, &data().tok.specials).unwrap();
        let acc = e.picks.iter().filter(|p| p.correct).count() as f64
            / items.len() as f64;
        // Chance is 1/3; the standard error over 600 items is 0.019.
        assert!((acc - 1.0 / 3.0).abs() < 0.08, "{arch:?}: {acc}");
    }
}

#[test]
fn cached_scoring_equals_scoring_whole_sequences() {
    let items = &data().eval.scene[..30];
    let sp = data().tok.specials;
    for arch in [Arch::Causal, Arch::NonCausal, Arch::EncDec] {
        let (_, net) = model(arch, 4);
        let cached = option_log_likelihoods(&net, arch, items, &sp).unwrap();
        for (it, ll) in items.iter().zip(&cached) {
            let pairs: Vec<(Vec<u32>, Vec<u32>)> =
                it.options.iter().map(|o| (it.prompt.clone(), o.clone())).collect();
            let whole = net
                .prompted_nll(arch, &pairs, &sp)
                .unwrap()
                .row_log_likelihoods()
                .unwrap();
            for (a, b) in ll.iter().zip(&whole) {
                assert!((a - b).abs() < 1e-3, "{arch:?}: cached {a}, whole {b}");
            }
        }
    }
}

#[test]
fn no_batch_built_for_training_holds_a_prompt_or_a_held_out_question() {
    let s = settings();
    let leak = scan_for_leakage(data(), &s).unwrap();
    assert_eq!(
        leak.pretraining_rows_scanned,
        (s.pretrain_steps + s.adapt_steps) * s.batch
    );
    assert_eq!(leak.finetuning_examples_scanned, s.mtf_steps * s.mtf_batch);
    assert_eq!(leak.pretraining_rows_with_prompts, 0);
    assert_eq!(leak.finetuning_examples_held_out, 0);
    // The scan can fail: every held-out question asked in the suite matches a stem.
    for it in data().eval.scene.iter().filter(|it| it.family.is_held_out()) {
        let text = data().tok.decode(&it.prompt).unwrap();
        assert!(HELD_OUT_STEMS.iter().any(|h| text.contains(h)), "{text}");
    }
}

#[test]
fn each_random_baseline_is_the_accuracy_of_a_random_pick() {
    let chance = random_baselines(&data().eval.scene);
    let mut r = rng::seeded(11);
    for &f in TaskFamily::VARIANTS {
        let items: Vec<&EvalItem> =
            data().eval.scene.iter().filter(|it| it.family == f).collect();
        let expected: f64 =
            items.iter().map(|it| 100.0 / it.options.len() as f64).sum::<f64>()
                / items.len() as f64;
        assert!((chance[&f] - expected).abs() < 1e-9);
        // Simulated random picks land on it.
        let trials = 4000;
        let hits = (0..trials)
            .filter(|_| {
                let it = items[r.random_range(0..items.len())];
                r.random_range(0..it.options.len()) == it.answer
            })
            .count();
        let simulated = 100.0 * hits as f64 / trials as f64;
        assert!(
            (simulated - chance[&f]).abs() < 3.0,
            "{f:?}: {simulated} against {}",
            chance[&f]
        );
    }
    // The kind suite offers one option per kind of the family's group.
    let kinds = random_baselines(&data().eval.kind);
    assert!((kinds[&TaskFamily::Bigger] - 100.0 / 3.0).abs() < 1e-9);
    assert!((kinds[&TaskFamily::Colour] - 25.0).abs() < 1e-9);
}

#[test]
fn a_saved_and_reloaded_checkpoint_scores_identically() {
    let s = settings();
    let cell = Cell::new(Arch::NonCausal, Objective::SpanMlm);
    let trained = pretrain(data(), &s, cell, 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = checkpoint_path(dir.path(), cell, 5);
    trained.store.save(&path).unwrap();
    let (store, net) = model(cell.arch, 77);
    store.load(&path).unwrap();
    let items = &data().eval.kind;
    let sp = data().tok.specials;
    let a = option_log_likelihoods(&trained.net, cell.arch, items, &sp).unwrap();
    let b = option_log_likelihoods(&net, cell.arch, items, &sp).unwrap();
    assert_eq!(a, b, "scores changed through a checkpoint");
    // And the reloaded weights are what phase 3 starts from.
    let adapted = adapt(data(), &s, &path, cell, 5).unwrap();
    assert_eq!(adapted.losses.len(), s.adapt_steps);
}

#[test]
fn the_cells_match_the_paper_and_the_encoder_decoder_has_twice_the_layers() {
    let s = settings();
    let costs = costs(
        &s.model_config(data().tok.vocab_size()),
        &data().rows[..s.batch],
        &data().tok.specials,
    )
    .unwrap();
    let names: Vec<&str> = costs.iter().map(|c| c.cell.as_str()).collect();
    assert_eq!(names, ["CD:FLM", "ND:PLM", "ED:PLM", "CD:MLM", "ND:MLM", "ED:MLM"]);
    // The two decoders are one model; the encoder-decoder has a second stack plus
    // cross-attention.
    assert_eq!(costs[0].parameters, costs[1].parameters);
    let cfg = s.model_config(data().tok.vocab_size());
    assert_eq!(costs[2].parameters, cfg.encoder_decoder_params());
    assert_eq!(costs[0].parameters, cfg.decoder_only_params());
}
