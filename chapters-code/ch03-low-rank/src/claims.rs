//! What the page says about the measurements, computed from them. Each claim's
//! wording is generated from the numbers it summarises, and `holds` says whether
//! the data bear it out; the book's build fails on a claim that does not hold.

use transformer::chapter::Claims;

use crate::{Report, Summary, point_key};

/// A sweep point's summary for one mask.
fn at<'a>(r: &'a Report, n: usize, d: usize, beta: f64, mask: &str) -> &'a Summary {
    &r.points[&point_key(n, d, beta)][mask]
}

/// `"8, 16 and 32"`.
fn and_list(xs: &[usize]) -> String {
    let s: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
    match s.len() {
        0 => String::new(),
        1 => s[0].clone(),
        k => format!("{} and {}", s[..k - 1].join(", "), s[k - 1]),
    }
}

/// `10` with `x` rounded to `dp` decimals as a superscript: `pow10(-2.06, 1)` is
/// `10⁻²·¹`.
fn pow10(x: f64, dp: usize) -> String {
    let digits = format!("{x:.dp$}");
    let sup: String = digits
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '.' => '·',
            d => "⁰¹²³⁴⁵⁶⁷⁸⁹"
                .chars()
                .nth(d.to_digit(10).unwrap_or(0) as usize)
                .unwrap_or(d),
        })
        .collect();
    format!("10{sup}")
}

/// The smallest head width from which `ok(d)` holds for that width and every larger
/// one.
fn threshold(ds: &[usize], ok: impl Fn(usize) -> bool) -> Option<usize> {
    let mut sorted = ds.to_vec();
    sorted.sort_unstable();
    let mut from = None;
    for &d in sorted.iter().rev() {
        if ok(d) {
            from = Some(d);
        } else {
            break;
        }
    }
    from
}

/// Every claim of the page about the sweep, the collapse and the trained models.
pub fn claims(r: &Report) -> Claims {
    let mut c = Claims::new();
    let (big_n, big_d) = (r.headline_n, r.headline_d);
    let betas_from_1: Vec<f64> =
        r.betas.iter().copied().filter(|&b| b >= 1.0).collect();
    let beta_min = r.betas.iter().copied().fold(f64::INFINITY, f64::min);
    let beta_max = r.betas.iter().copied().fold(f64::NEG_INFINITY, f64::max);

    // From β = 1 on, which head widths give the bidirectional matrix the higher
    // effective rank at every n?
    let bidir_higher = |d: usize| {
        r.ns.iter().all(|&n| {
            betas_from_1.iter().all(|&b| {
                at(r, n, d, b, "bidirectional").effective_rank.mean
                    > at(r, n, d, b, "causal").effective_rank.mean
            })
        })
    };
    let from = threshold(&r.ds, bidir_higher);
    let below: Vec<usize> =
        r.ds.iter().copied().filter(|&d| from.is_none_or(|f| d < f)).collect();
    let text = match (from, below.first()) {
        (Some(f), None) => {
            format!("at every head width of the grid (d ≥ {f}) and every n")
        }
        (Some(f), Some(&d0)) => {
            let (b, k) = (
                at(r, big_n, d0, 1.0, "bidirectional"),
                at(r, big_n, d0, 1.0, "causal"),
            );
            format!(
                "for every head width d ≥ {f} and every n; at d = {} it does not hold throughout (at n = {big_n}, \
                 β = 1, d = {d0}: {:.0} bidirectional against {:.0} causal)",
                and_list(&below),
                b.effective_rank.mean,
                k.effective_rank.mean
            )
        }
        (None, _) => "at no head width of the grid".to_string(),
    };
    c.add("bidirectional_higher_effective_rank_from_beta_1", from.is_some(), text);
    c.add(
        "bidirectional_higher_in_brief",
        from.is_some(),
        match (from, below.is_empty()) {
            (Some(f), false) => format!("for head widths of {f} and more"),
            _ => "at every head width of the grid".to_string(),
        },
    );

    // At the smallest β, which head widths put the bidirectional rank@1e-3 within
    // 25% of d + 1 (at every n larger than d + 1, where the bound can bind)?
    let near = |d: usize| {
        r.ns.iter().filter(|&&n| n > d + 1).all(|&n| {
            let rank = at(r, n, d, beta_min, "bidirectional").rank_1e3.mean;
            (rank - (d + 1) as f64).abs() <= 0.25 * (d + 1) as f64
        })
    };
    let from = threshold(&r.ds, near);
    let below: Vec<usize> =
        r.ds.iter().copied().filter(|&d| from.is_none_or(|f| d < f)).collect();
    let spread = |d: usize| {
        let ranks: Vec<f64> =
            r.ns.iter()
                .filter(|&&n| n > d + 1)
                .map(|&n| at(r, n, d, beta_min, "bidirectional").rank_1e3.mean)
                .collect();
        (
            ranks.iter().copied().fold(f64::INFINITY, f64::min),
            ranks.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let text = match (from, below.first()) {
        (Some(f), None) => format!("for every head width of the grid (d ≥ {f})"),
        (Some(f), Some(&d0)) => {
            let (lo, hi) = spread(d0);
            format!(
                "for head widths d ≥ {f} only: at d = {d0} the rank at 10⁻³ is {lo:.0}–{hi:.0} across n, against \
                 d + 1 = {}",
                d0 + 1
            )
        }
        (None, _) => "for no head width of the grid".to_string(),
    };
    c.add("near_d_plus_1_at_small_beta", from.is_some(), text);

    // Does the bidirectional rank at 10⁻³ keep climbing with β, or turn over?
    let ranks: Vec<(f64, f64)> = r
        .betas
        .iter()
        .map(|&b| (b, at(r, big_n, big_d, b, "bidirectional").rank_1e3.mean))
        .collect();
    let (peak_beta, peak) = ranks
        .iter()
        .copied()
        .fold((f64::NAN, f64::NEG_INFINITY), |a, x| if x.1 > a.1 { x } else { a });
    let last = ranks.last().map_or(f64::NAN, |x| x.1);
    c.add(
        "rank_turns_over_at_large_beta",
        peak_beta < beta_max && last < peak,
        format!(
            "at n = {big_n} and d = {big_d} it climbs to {peak:.0} at β = {peak_beta} and falls back to {last:.0} at \
             β = {beta_max}"
        ),
    );

    // Conditioning: which mask is better conditioned, at the smallest β and from β
    // = 1 on?
    let every_point = |betas: &[f64], causal_better: bool| {
        r.ns.iter().all(|&n| {
            r.ds.iter().all(|&d| {
                betas.iter().all(|&b| {
                    let (bi, ca) = (
                        at(r, n, d, b, "bidirectional").log10_cond.mean,
                        at(r, n, d, b, "causal").log10_cond.mean,
                    );
                    if causal_better { ca < bi } else { ca > bi }
                })
            })
        })
    };
    let (b, k) = (
        at(r, big_n, big_d, beta_min, "bidirectional"),
        at(r, big_n, big_d, beta_min, "causal"),
    );
    c.add(
        "causal_better_conditioned_at_small_beta",
        every_point(&[beta_min], true),
        format!(
            "at β = {beta_min} the causal matrix is the better conditioned one at every (n, d) of the grid (at n = \
             {big_n}, d = {big_d}: about {} against {})",
            pow10(k.log10_cond.mean, 0),
            pow10(b.log10_cond.mean, 0)
        ),
    );
    let (b, k) = (
        at(r, big_n, big_d, 1.0, "bidirectional"),
        at(r, big_n, big_d, 1.0, "causal"),
    );
    c.add(
        "causal_worse_conditioned_from_beta_1",
        every_point(&betas_from_1, false),
        format!(
            "from β = 1 on it is the worse conditioned one at every (n, d) (at n = {big_n}, d = {big_d}, β = 1: about \
             {} against {})",
            pow10(k.log10_cond.mean, 0),
            pow10(b.log10_cond.mean, 0)
        ),
    );

    // Collapse with skip connections: slowed or stopped, and which mask collapses
    // faster.
    let series =
        |variant: &str, mask: &str| &r.collapse.series[variant][mask].log10_mean;
    let per_layer_fall = |variant: &str, mask: &str| {
        let s = series(variant, mask);
        1.0 - 10f64.powf(s[s.len() - 1] - s[s.len() - 2])
    };
    let mut slowing = Vec::new();
    let mut still_falling = true;
    for variant in ["residual", "full"] {
        for mask in ["bidirectional", "causal"] {
            let fall = per_layer_fall(variant, mask);
            still_falling &= fall > 0.0;
            slowing.push(format!("{:.0}% ({variant}, {mask})", 100.0 * fall));
        }
    }
    c.add(
        "skips_slow_but_do_not_stop_collapse",
        still_falling,
        format!(
            "slow the collapse but do not stop it: in the last of the {} layers the distance still falls by {}",
            r.collapse.layers,
            slowing.join(", ")
        ),
    );
    c.add(
        "skips_slow_collapse_in_brief",
        still_falling,
        format!(
            "slow it down without stopping it within {} layers",
            r.collapse.layers
        ),
    );
    let last =
        |variant: &str, mask: &str| *series(variant, mask).last().expect("layers");
    let faster = |variant: &str| {
        if last(variant, "causal") < last(variant, "bidirectional") {
            "causal"
        } else {
            "bidirectional"
        }
    };
    c.add(
        "causal_collapses_faster_with_skips",
        faster("residual") == "causal",
        format!(
            "with skip connections alone the causal stack ends closer to rank 1 than the bidirectional one \
             ({} against {}); with full blocks the {} one does ({} against {})",
            pow10(last("residual", "causal"), 2),
            pow10(last("residual", "bidirectional"), 2),
            faster("full"),
            pow10(last("full", faster("full")), 2),
            pow10(last("full", if faster("full") == "causal" { "bidirectional" } else { "causal" }), 2),
        ),
    );

    c.add(
        "causal_collapses_faster_in_brief",
        faster("residual") == "causal",
        "with skip connections the causal stack even ends closer to rank 1",
    );

    // Trained models: condition numbers beyond what f32 probabilities resolve.
    let cond = |model: &str| {
        r.trained.models[model].trained_means.block.as_ref().map(|m| m.log10_cond)
    };
    if let (Some(causal), Some(prefix)) = (cond("causal"), cond("prefix")) {
        c.add(
            "trained_causal_blocks_singular_to_f32",
            causal > 7.0 && prefix < 7.0,
            format!(
                "the trained causal blocks are singular to `f32` precision (their estimated condition numbers, about \
                 {} on average, lie beyond the 10⁷ that `f32` probabilities can resolve), while the \
                 bidirectional blocks stay within it (about {})",
                pow10(causal, 0),
                pow10(prefix, 0)
            ),
        );
    }
    sweep_claims(r, &mut c);
    trained_claims(r, &mut c);
    c
}

/// A sweep point's summary, if the grid has it.
fn point<'a>(
    r: &'a Report,
    n: usize,
    d: usize,
    beta: f64,
    mask: &str,
) -> Option<&'a Summary> {
    r.points.get(&point_key(n, d, beta)).and_then(|m| m.get(mask))
}

/// Claims about Su's setting, the causal determinant, the output rank and the
/// collapse.
fn sweep_claims(r: &Report, c: &mut Claims) {
    let (n, d) = (r.headline_n, r.headline_d);
    let p = |beta: f64, mask: &str| point(r, n, d, beta, mask);
    let beta_min = r.betas.iter().copied().fold(f64::INFINITY, f64::min);
    let beta_max = r.betas.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // At β = 1: the bidirectional matrix is full rank at NumPy's tolerance, and the
    // causal one has the lower effective rank.
    let at_1 = match (p(1.0, "bidirectional"), p(1.0, "causal")) {
        (Some(b), Some(k)) => {
            b.rank_eps.mean == n as f64
                && k.effective_rank.mean < b.effective_rank.mean
                && k.rank_eps.mean < n as f64
        }
        _ => false,
    };
    c.add(
        "headline_beta_1_bidirectional_full_causal_lower",
        at_1,
        "at β = 1 the bidirectional matrix has full rank at NumPy's tolerance, the causal one less, and a lower effective rank",
    );
    // At the smallest β the bidirectional rank at 10⁻³ is exactly d + 1.
    c.add(
        "headline_small_beta_rank_is_d_plus_1",
        p(beta_min, "bidirectional").is_some_and(|b| {
            b.rank_1e3.mean == (d + 1) as f64 && b.rank_1e3.std == 0.0
        }),
        "at the smallest β the bidirectional rank at 10⁻³ is d + 1 in every seed",
    );
    // At the largest β the causal matrix is the one that loses rank in floating
    // point.
    c.add(
        "headline_large_beta_causal_degrades",
        match (p(beta_max, "bidirectional"), p(beta_max, "causal")) {
            (Some(b), Some(k)) => b.rank_eps.mean == n as f64 && k.rank_eps.mean < n as f64,
            _ => false,
        },
        "at the largest β the causal matrix is rank-deficient at NumPy's tolerance and the bidirectional one is not",
    );
    // The causal determinant: positive, and far below what f64 represents (10⁻³⁰⁸).
    c.add(
        "causal_det_positive_and_unrepresentable",
        r.checks.causal_det_positive && r.checks.causal_min_log10_det < -308.0,
        "every causal determinant is positive, and the smallest is below 10⁻³⁰⁸",
    );
    // From β = 1 on, every causal matrix of the table (d = headline d) is
    // rank-deficient at NumPy's tolerance; and the SVD's condition number lies on
    // both sides of the exact lower bound.
    let singular = r.ns.iter().all(|&n| {
        r.betas.iter().filter(|&&b| b >= 1.0).all(|&b| {
            point(r, n, d, b, "causal").is_some_and(|s| s.rank_eps.mean < n as f64)
        })
    });
    c.add(
        "causal_singular_to_f64_from_beta_1",
        singular && r.betas.iter().any(|&b| b >= 1.0),
        "every causal matrix of the table from β = 1 on is rank-deficient at NumPy's tolerance",
    );
    let bound_side = |above: bool| {
        r.ns.iter().any(|&n| {
            r.betas.iter().any(|&b| {
                point(r, n, d, b, "causal").is_some_and(|s| {
                    match &s.log10_cond_lower_bound {
                        Some(lb) => (s.log10_cond.mean > lb.mean) == above,
                        None => false,
                    }
                })
            })
        })
    };
    c.add(
        "svd_cond_on_both_sides_of_the_bound",
        bound_side(true) && bound_side(false),
        "the SVD's condition number is above the exact lower bound in some rows and below it in others",
    );
    // The output rank never exceeds d, equals d at the headline n, and falls short
    // only where A does.
    let at_headline_n = r.ds.iter().all(|&d| {
        r.betas.iter().all(|&b| {
            ["bidirectional", "causal"].iter().all(|m| {
                point(r, n, d, b, m).is_some_and(|s| s.output_rank.mean == d as f64)
            })
        })
    });
    c.add(
        "output_rank_at_most_d_equal_at_headline_n",
        r.checks.output_rank_max_excess == 0 && r.checks.output_rank_deficient_only_where_a_is && at_headline_n,
        "rank(AV) never exceeds d, equals d at the headline n, and falls short only where A is rank-deficient",
    );
    // Hadamard powers.
    c.add(
        "hadamard_within_and_attaining_bound",
        r.hadamard.all_within_bound && r.hadamard.all_attain_bound,
        "every Hadamard power is within its bound and attains it",
    );
    // Pure attention: the causal stack collapses too, more slowly.
    let last = |variant: &str, mask: &str| {
        r.collapse.series[variant][mask]
            .log10_mean
            .last()
            .copied()
            .unwrap_or(f64::NAN)
    };
    c.add(
        "pure_causal_collapses_more_slowly",
        last("pure", "causal") < -1.0 && last("pure", "causal") > last("pure", "bidirectional"),
        "pure causal attention ends more than ten times closer to rank 1 than it started, but farther than pure bidirectional attention",
    );
}

/// Claims about the small trained models.
fn trained_claims(r: &Report, c: &mut Claims) {
    let t = &r.trained;
    let (causal, prefix, masked) =
        (&t.models["causal"], &t.models["prefix"], &t.models["masked"]);
    // Losses: the decoders about equally, the encoder below the frequency baseline
    // but far behind.
    if let (Some(ci), Some(ct), Some(pt)) = (
        causal.suffix_loss_init,
        causal.suffix_loss_trained,
        prefix.suffix_loss_trained,
    ) {
        let (gap, fall) = ((ct - pt).abs(), ci - ct.max(pt));
        c.add(
            "decoders_learned_about_equally",
            gap < 0.02 * fall,
            format!("about equally well: their losses after the prefix differ by {gap:.2} nats, against a fall of {fall:.2} from initialisation"),
        );
    }
    c.add(
        "encoder_below_baseline_behind_decoders",
        masked.heldout_loss_trained < t.unigram_loss
            && masked.heldout_loss_trained > causal.heldout_loss_trained.max(prefix.heldout_loss_trained),
        "the encoder's held-out loss is below the frequency baseline and above both decoders'",
    );
    // Block ranks: the bidirectional block lower than the causal one, before and
    // after training, and lifted well above d + 1 by training.
    let bound = t.log_rank_bound as f64;
    if let (Some(pi), Some(pt), Some(ki), Some(kt)) = (
        prefix.init_means.block.as_ref(),
        prefix.trained_means.block.as_ref(),
        causal.init_means.block.as_ref(),
        causal.trained_means.block.as_ref(),
    ) {
        let lower = |b: &crate::trained::HeadMeans,
                     k: &crate::trained::HeadMeans| {
            b.effective_rank < k.effective_rank
                && b.rank_1e3 < k.rank_1e3
                && b.stable_rank < k.stable_rank
        };
        c.add(
            "trained_blocks_gap_remains",
            lower(pi, ki) && lower(pt, kt) && pt.effective_rank > pi.effective_rank && kt.effective_rank > ki.effective_rank,
            "training raises both blocks' effective ranks and the bidirectional block stays below the causal one by every measure",
        );
        c.add(
            "trained_bidirectional_rank_well_above_d_plus_1",
            pt.rank_1e3 > 1.5 * bound && pt.rank_1e3 < kt.rank_1e3,
            "training lifts the bidirectional blocks' rank at 10⁻³ above 1.5 (d + 1), not to the causal blocks'",
        );
        // Where the trained blocks sit in the sweep at the same n and d.
        let (n, d) = (t.prefix, t.head_dim);
        let eff =
            |b: f64, m: &str| point(r, n, d, b, m).map(|s| s.effective_rank.mean);
        let placed = match (
            eff(0.1, "bidirectional"),
            eff(0.3, "bidirectional"),
            eff(1.0, "causal"),
            eff(0.3, "causal"),
            eff(3.0, "causal"),
        ) {
            (Some(b01), Some(b03), Some(k1), Some(k03), Some(k3)) => {
                b01 < pt.effective_rank
                    && pt.effective_rank < b03
                    && (kt.effective_rank - k1).abs()
                        < (kt.effective_rank - k03)
                            .abs()
                            .min((kt.effective_rank - k3).abs())
            }
            _ => false,
        };
        c.add(
            "trained_blocks_placed_in_the_sweep",
            placed,
            "the trained bidirectional blocks lie between the sweep's β = 0.1 and β = 0.3, the causal blocks closest to β = 1",
        );
    }
    // ln A of every bidirectional block or matrix stays within d + 1.
    let within = [&prefix.init_means.block, &prefix.trained_means.block]
        .into_iter()
        .flatten()
        .chain([&masked.init_means.full, &masked.trained_means.full])
        .all(|m| m.log_rank_max.is_some_and(|x| x <= bound));
    c.add(
        "log_a_rank_within_d_plus_1",
        within,
        "ln A has numerical rank at most d + 1 in every bidirectional head, before and after training",
    );
    // The causal blocks' smallest diagonal weights: how far they fall with
    // training.
    let diag = |h: &crate::trained::HeadSummary| {
        h.block.as_ref().and_then(|b| b.log10_min_diag)
    };
    let pairs: Vec<(f64, f64)> = causal
        .init
        .iter()
        .zip(&causal.trained)
        .filter_map(|(i, t)| Some((diag(i)?, diag(t)?)))
        .collect();
    let heads = pairs.len();
    let every_fell = heads > 0 && pairs.iter().all(|(a, b)| b < a);
    let tenfold = pairs.iter().filter(|(a, b)| *b < a - 1.0).count();
    let init_mean = pairs.iter().map(|p| p.0).sum::<f64>() / heads.max(1) as f64;
    let lo = pairs.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = pairs.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let rank_below = causal
        .trained_means
        .block
        .as_ref()
        .is_some_and(|b| b.rank_1e3 < t.prefix as f64);
    c.add(
        "causal_min_diag_falls_in_most_heads",
        every_fell && 2 * tenfold > heads && rank_below,
        format!(
            "Training lowers the smallest diagonal weight of the block in every causal head, from about {} at \
             initialisation to between {} and {}, by more than a factor of ten in {tenfold} of the {heads} heads",
            pow10(init_mean, 1),
            pow10(hi, 1),
            pow10(lo, 1)
        ),
    );
    // Whole matrices: encoder below the prefix LM below the causal decoder.
    let (m, p, k) = (
        &masked.trained_means.full,
        &prefix.trained_means.full,
        &causal.trained_means.full,
    );
    c.add(
        "whole_matrices_ordered",
        m.effective_rank < p.effective_rank && p.effective_rank < k.effective_rank && masked.trained_means.full.rank_1e3 > masked.init_means.full.rank_1e3,
        "the encoder's trained heads have the lowest effective rank, the prefix LM's lie between, the causal decoder's the highest",
    );
}
