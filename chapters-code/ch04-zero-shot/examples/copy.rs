use ch04_zero_shot::*;
use rand::Rng as _;
use transformer::train::{self, StepLoss, TrainConfig};
use transformer::{Config, ParamStore, PositionKind};
fn main() -> anyhow::Result<()> {
    let sp = transformer::tokenizer::Specials::with_sentinels(32);
    let mode: usize = std::env::args().nth(1).unwrap().parse()?;
    let len: usize = std::env::args().nth(2).unwrap().parse()?;
    let cfg = Config {
        vocab_size: 300,
        d_model: 64,
        n_heads: 4,
        n_kv_heads: 4,
        d_ff: 256,
        n_layers: 2,
        max_len: 256,
        positions: PositionKind::Learned,
        tie_embeddings: true,
    };
    let store = ParamStore::new(0);
    let net = Net::new(&store, Arch::Causal, &cfg)?;
    let tc = TrainConfig {
        steps: 600,
        lr: 3e-3,
        warmup: 60,
        progress: false,
        eval_every: 0,
        ..TrainConfig::default()
    };
    let log = train::train(
        &store,
        &tc,
        |_, r| {
            let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..16)
                .map(|_| {
                    let ctx: Vec<u32> = (0..len).map(|_| r.random_range(100..140u32)).collect();
                    let (q, a) = if mode == 0 {
                        (vec![sp.sep], ctx[3])
                    } else {
                        let i = r.random_range(0..len - 1);
                        (vec![sp.sep, ctx[i]], ctx[i + 1])
                    };
                    ([ctx, q].concat(), vec![a])
                })
                .collect();
            let b = net.prompted_nll(Arch::Causal, &pairs, &sp)?.mean()?;
            Ok(StepLoss { loss: b.loss, tokens_seen: 0, tokens_supervised: b.tokens_supervised })
        },
        |_| Ok(0.0),
    )?;
    for k in [0, 100, 200, 300, 400, 500, 590] {
        println!("step {k}: {:.3}", log.steps[k..k + 10].iter().map(|s| s.loss).sum::<f64>() / 10.0);
    }
    Ok(())
}
