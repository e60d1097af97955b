// Compiles exercises/starters/span_corruption.rs into this test (the solution with
// --features solutions).
exercises::exercise!(span_corruption);

use proptest::prelude::*;
use transformer::objectives::{SpanConfig, corrupt_spans, noise_mask};
use transformer::rng;
use transformer::tokenizer::Specials;

const EOS: u32 = 2;
const FIRST: u32 = 5;
const N: u32 = 32;

#[test]
fn the_example_from_the_t5_paper() {
    // Thank(100) you(101) for(102) inviting(103) me(104) to(105) your(106)
    // party(107) last(108) week(109) .(110)
    let tokens: Vec<u32> = (100..111).collect();
    let noise =
        [false, false, true, true, false, false, false, false, true, false, false];
    let (input, target) = corrupt(&tokens, &noise, FIRST, EOS);
    assert_eq!(
        input,
        vec![100, 101, FIRST, 104, 105, 106, 107, FIRST + 1, 109, 110, EOS]
    );
    assert_eq!(target, vec![FIRST, 102, 103, FIRST + 1, 108, EOS]);
    assert_eq!(restore(&input, &target, FIRST, N, EOS), tokens);
}

#[test]
fn nothing_dropped_and_a_span_at_each_end() {
    let tokens = [20, 21, 22, 23];
    assert_eq!(
        corrupt(&tokens, &[false; 4], FIRST, EOS),
        (vec![20, 21, 22, 23, EOS], vec![EOS])
    );
    let (input, target) = corrupt(&tokens, &[true, false, false, true], FIRST, EOS);
    assert_eq!(input, vec![FIRST, 21, 22, FIRST + 1, EOS]);
    assert_eq!(target, vec![FIRST, 20, FIRST + 1, 23, EOS]);
}

#[test]
fn it_agrees_with_the_library_on_t5_noise_masks() {
    let sp = Specials {
        pad: 0,
        bos: 1,
        eos: EOS,
        sep: 3,
        mask: 4,
        first_sentinel: FIRST,
        n_sentinels: N,
    };
    let mut r = rng::seeded(5);
    for len in [8usize, 17, 64, 100] {
        let tokens: Vec<u32> = (0..len as u32).map(|i| 100 + i).collect();
        for _ in 0..20 {
            let noise = noise_mask(len, &SpanConfig::default(), &mut r);
            assert_eq!(
                corrupt(&tokens, &noise, FIRST, EOS),
                corrupt_spans(&tokens, &noise, &sp).unwrap()
            );
        }
    }
}

proptest! {
    // A failing starter must not leave a regressions file behind in the exercise
    // folder.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn restore_inverts_corrupt(
        noise in prop::collection::vec(any::<bool>(), 1..60)
    ) {
        let tokens: Vec<u32> = (0..noise.len() as u32).map(|i| 100 + i).collect();
        let (input, target) = corrupt(&tokens, &noise, FIRST, EOS);
        let spans = (0..noise.len())
            .filter(|&i| noise[i] && (i == 0 || !noise[i - 1]))
            .count();
        prop_assume!(spans <= N as usize);
        prop_assert_eq!(input.len() + target.len(), tokens.len() + 2 * spans + 2);
        prop_assert_eq!(restore(&input, &target, FIRST, N, EOS), tokens);
    }
}
