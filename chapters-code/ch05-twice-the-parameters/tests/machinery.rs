//! The machinery does what the page says: the contenders' sizes and costs are the
//! library's formulas, every contender is asked the same thing, greedy decoding
//! with a cache is greedy decoding, and the step-listing score counts what it
//! claims.

use candle_core::Tensor;
use ch04_zero_shot::{Arch, Net};
use ch05_twice_the_parameters::*;
use transformer::chapter::Preset;
use transformer::objectives::{prompted_lm, seq2seq_pairs};
use transformer::{DEVICE, MaskKind, ParamStore};

fn quick() -> (Settings, Data) {
    let s = Settings::new(Preset::Quick, &Args::default()).unwrap();
    let d = build(&s).unwrap();
    (s, d)
}

#[test]
fn parameters_and_flops_are_the_librarys_formulas() {
    let (s, d) = quick();
    let vocab = d.world.tok.vocab_size();
    let pairs = pretraining_pairs(&d.world.rows[..s.world.batch], 0);
    let costs = costs(&s, vocab, &pairs, &d.world.tok.specials).unwrap();
    let (k, t) = (pairs[0].0.len(), pairs[0].0.len() + pairs[0].1.len());
    let rows = pairs.len() as u64;
    for (c, cost) in CONTENDERS.iter().zip(&costs) {
        let cfg = s.model_config(vocab, c.layers(s.layers));
        let (params, flops) = match (c.arch, c.shared) {
            (Arch::EncDec, false) => (
                cfg.encoder_decoder_params(),
                rows * cfg.encoder_decoder_flops(k, t - k),
            ),
            (Arch::EncDec, true) => (
                cfg.shared_encoder_decoder_params(),
                rows * cfg.encoder_decoder_flops(k, t - k),
            ),
            // A decoder reads the pair without its last token.
            _ => (
                cfg.decoder_only_params(),
                rows * (t as u64 - 1) * cfg.decoder_only_flops_per_token(t - 1),
            ),
        };
        assert_eq!(cost.parameters, params, "{}", c.name);
        assert_eq!(
            cost.first_batch_forward_flops_per_token,
            flops / (rows * t as u64),
            "{}",
            c.name
        );
    }
    // The matched pairs are matched: L + L has about twice the parameters of L and
    // of the shared model, and about the FLOPs of L; 2L has about the parameters of
    // L + L.
    let by = |n: &str| costs.iter().find(|c| c.name == n).unwrap();
    let ratio = |a: &str, b: &str, f: fn(&Cost) -> f64| f(by(a)) / f(by(b));
    let p = |c: &Cost| c.parameters as f64;
    let f = |c: &Cost| c.first_batch_forward_flops_per_token as f64;
    assert!(ratio("Enc-dec, L+L", "Enc-dec shared, L+L", p) > 1.2);
    assert!((ratio("Enc-dec shared, L+L", "Enc-dec, L+L", f) - 1.0).abs() < 1e-12);
    assert!((ratio("LM, 2L", "LM, L", f) - 2.0).abs() < 0.3);
    assert!((ratio("Prefix LM, L", "LM, L", f) - 1.0).abs() < 1e-12);
}

#[test]
fn every_contender_is_asked_for_the_same_targets_after_the_same_inputs() {
    let (s, d) = quick();
    let rows = &d.world.rows[..s.world.batch];
    let pairs = pretraining_pairs(rows, 3);
    assert_eq!(
        pairs,
        pretraining_pairs(rows, 3),
        "the split depends on the step only"
    );
    let k = pairs[0].0.len();
    for (row, (p, a)) in rows.iter().zip(&pairs) {
        assert_eq!(p.len(), k, "one split per batch");
        assert_eq!([p.as_slice(), a.as_slice()].concat(), *row);
    }
    let splits: std::collections::BTreeSet<usize> =
        (0..20).map(|i| pretraining_pairs(rows, i)[0].0.len()).collect();
    assert!(splits.len() > 5, "the split moves from step to step: {splits:?}");
    // The decoders and the encoder-decoder supervise the same tokens: the targets.
    let sp = &d.world.tok.specials;
    let target_tokens: usize = pairs.iter().map(|(_, a)| a.len()).sum();
    assert_eq!(prompted_lm(&pairs, sp, false).tokens_supervised(), target_tokens);
    assert_eq!(prompted_lm(&pairs, sp, true).tokens_supervised(), target_tokens);
    assert_eq!(seq2seq_pairs(&pairs, sp).tokens_supervised(), target_tokens);
}

fn argmax_rows(logits: &Tensor) -> Vec<u32> {
    logits.squeeze(0).unwrap().argmax(1).unwrap().to_vec1().unwrap()
}

#[test]
fn cached_greedy_decoding_is_greedy_decoding_for_every_architecture() {
    let (s, d) = quick();
    let vocab = d.world.tok.vocab_size();
    let sp = &d.world.tok.specials;
    let prompt = &d.listing[0].prompt;
    let n = 6;
    for c in
        [contender("LM, L"), contender("Prefix LM, L"), contender("Enc-dec, L+L")]
    {
        let store = ParamStore::new(3);
        let net = c.build(&store, &s, vocab).unwrap();
        let g = generate(&net, c.arch, prompt, n, sp).unwrap();
        assert_eq!(g.len(), n);
        // Without a cache: every generated token is the argmax after everything
        // before it.
        let full: Vec<u32> = prompt.iter().chain(&g).copied().collect();
        let redone = match &net {
            Net::Decoder(m) => {
                let mask = if c.arch == Arch::Causal {
                    MaskKind::Causal
                } else {
                    MaskKind::prefix(prompt.len())
                };
                let ids = Tensor::from_vec(
                    full[..full.len() - 1].to_vec(),
                    (1, full.len() - 1),
                    &DEVICE,
                )
                .unwrap();
                argmax_rows(&m.forward(&ids, &mask).unwrap())[prompt.len() - 1..]
                    .to_vec()
            }
            Net::EncDec(m) => {
                let src =
                    Tensor::from_vec(prompt.clone(), (1, prompt.len()), &DEVICE)
                        .unwrap();
                let tgt_in: Vec<u32> = std::iter::once(sp.bos)
                    .chain(g[..n - 1].iter().copied())
                    .collect();
                let tgt = Tensor::from_vec(tgt_in, (1, n), &DEVICE).unwrap();
                argmax_rows(&m.forward(&src, &tgt).unwrap())
            }
        };
        assert_eq!(redone, g, "{}", c.name);
    }
}

#[test]
fn the_step_listing_task_and_its_score() {
    let (s, _) = quick();
    let qs = listing_questions(&Settings { listing_questions: 200, ..s.clone() });
    assert!(
        qs.iter().all(|l| l.answer.starts_with(' ') && l.answer.ends_with('.'))
    );
    // Some plans are told out of order, most in order.
    let shuffled = qs.iter().filter(|l| l.prompt.contains("Before ")).count();
    assert!(shuffled > 10 && shuffled < 150, "{shuffled}");
    assert_eq!(
        steps_of(" wash the cup, dry the box."),
        ["wash the cup", "dry the box"]
    );
    assert_eq!(
        steps_right(" wash the cup, dry the box.", " wash the cup, dry the box."),
        100.0
    );
    assert_eq!(
        steps_right(" dry the box, wash the cup.", " wash the cup, dry the box."),
        0.0
    );
    assert_eq!(
        steps_right(" wash the cup, paint", " wash the cup, dry the box."),
        50.0
    );
    assert_eq!(steps_right("", " wash the cup, dry the box, open the box."), 0.0);
}

#[test]
fn finetuning_batches_mix_chapter_4s_families_with_step_listing() {
    let (s, d) = quick();
    let b = finetune_batch(&d, &s, 0).unwrap();
    assert_eq!(b.len(), s.finetune_batch);
    let question = d.world.tok.encode("What are the steps, in order?").unwrap();
    let has =
        |p: &[u32]| p.windows(question.len()).any(|w| w == question.as_slice());
    let listing = b.iter().filter(|(p, _)| has(p)).count();
    assert_eq!(listing, s.finetune_batch - s.world.mtf_batch);
    assert_ne!(b, finetune_batch(&d, &s, 1).unwrap(), "fresh examples every step");
}

#[test]
fn the_shared_contender_cannot_be_a_decoder() {
    let (s, d) = quick();
    let bogus = Contender { shared: true, ..contender("LM, L") };
    let err = bogus
        .build(&ParamStore::new(0), &s, d.world.tok.vocab_size())
        .err()
        .unwrap();
    assert!(err.to_string().contains("no second stack"), "{err}");
}

#[test]
fn no_evaluation_question_reaches_finetuning() {
    let (s, d) = quick();
    let eval: std::collections::BTreeSet<&Vec<u32>> =
        d.listing.iter().map(|l| &l.prompt).collect();
    let mut scanned = 0;
    for step in 0..s.finetune_steps {
        for (prompt, _) in finetune_batch(&d, &s, step).unwrap() {
            assert!(
                !eval.contains(&prompt),
                "finetuning step {step} asks an evaluation question"
            );
            scanned += 1;
        }
    }
    assert_eq!(scanned, s.finetune_steps * s.finetune_batch);
}
