// Compiles exercises/starters/bert_masking.rs into this test (the solution with
// --features solutions).
exercises::exercise!(bert_masking);

const MASK: u32 = 4;

/// A small, seeded generator so the tests need no extra crate: xorshift64*.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn each_branch_on_a_scripted_coin() {
    let tokens = [10, 11, 12, 13, 14];
    let chosen = [true, false, true, true, false];
    let mut coins = vec![0.95, 0.85, 0.1].into_iter();
    let mut coin = || coins.next().expect("one coin per chosen position");
    let mut random = || 99;
    let (input, weight) = bert_mask(&tokens, &chosen, MASK, &mut coin, &mut random);
    // Position 0 kept (0.95), position 2 random (0.85), position 3 masked (0.1).
    assert_eq!(input, vec![10, 11, 99, MASK, 14]);
    assert_eq!(weight, vec![1.0, 0.0, 1.0, 1.0, 0.0]);
}

#[test]
fn the_boundaries_belong_to_the_upper_branch() {
    let mut coins = vec![0.8, 0.9].into_iter();
    let mut coin = || coins.next().unwrap();
    let mut random = || 77;
    let (input, _) =
        bert_mask(&[1, 2], &[true, true], MASK, &mut coin, &mut random);
    assert_eq!(input, vec![77, 2]);
}

#[test]
fn a_random_token_is_drawn_only_when_needed() {
    let mut calls = 0;
    let mut coin = || 0.5;
    let mut random = || {
        calls += 1;
        0
    };
    let _ =
        bert_mask(&[1, 2, 3], &[true, true, true], MASK, &mut coin, &mut random);
    assert_eq!(calls, 0);
}

#[test]
fn rates_over_many_draws_are_80_10_10() {
    let mut rng = Draws(0x9e37_79b9_7f4a_7c15);
    let n = 60_000;
    let tokens: Vec<u32> = (0..n).map(|i| 100 + (i % 500) as u32).collect();
    let chosen = vec![true; n];
    let mut coin_rng = Draws(7);
    let mut coin = || coin_rng.uniform();
    // Random replacements come from 1000..2000, so they never equal an original
    // token.
    let mut random = || 1000 + (rng.next() % 1000) as u32;
    let (input, weight) = bert_mask(&tokens, &chosen, MASK, &mut coin, &mut random);
    assert!(weight.iter().all(|&w| w == 1.0));
    let masked = input.iter().filter(|&&x| x == MASK).count() as f64 / n as f64;
    let kept =
        input.iter().zip(&tokens).filter(|(a, b)| a == b).count() as f64 / n as f64;
    let random_share =
        input.iter().filter(|&&x| x >= 1000).count() as f64 / n as f64;
    assert!((masked - 0.8).abs() < 0.01, "masked {masked}");
    assert!((kept - 0.1).abs() < 0.01, "kept {kept}");
    assert!((random_share - 0.1).abs() < 0.01, "random {random_share}");
}

#[test]
fn positions_not_chosen_are_copied_and_get_no_loss() {
    let tokens: Vec<u32> = (0..40).collect();
    let chosen: Vec<bool> = (0..40).map(|i| i % 7 == 3).collect();
    let mut coin = || 0.0;
    let mut random = || 0;
    let (input, weight) = bert_mask(&tokens, &chosen, MASK, &mut coin, &mut random);
    for i in 0..40 {
        if chosen[i] {
            assert_eq!((input[i], weight[i]), (MASK, 1.0));
        } else {
            assert_eq!((input[i], weight[i]), (tokens[i], 0.0));
        }
    }
}
