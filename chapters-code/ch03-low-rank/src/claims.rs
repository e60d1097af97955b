//! What the page says about the measurements, computed from them. Each claim's wording is
//! generated from the numbers it summarises, and `holds` says whether the data bear it out; the
//! book's build fails on a claim that does not hold.

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

/// `10` with `x` rounded to `dp` decimals as a superscript: `pow10(-2.06, 1)` is `10⁻²·¹`.
fn pow10(x: f64, dp: usize) -> String {
    let digits = format!("{x:.dp$}");
    let sup: String = digits
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '.' => '·',
            d => "⁰¹²³⁴⁵⁶⁷⁸⁹".chars().nth(d.to_digit(10).unwrap_or(0) as usize).unwrap_or(d),
        })
        .collect();
    format!("10{sup}")
}

/// The smallest head width from which `ok(d)` holds for that width and every larger one.
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
    let betas_from_1: Vec<f64> = r.betas.iter().copied().filter(|&b| b >= 1.0).collect();
    let beta_min = r.betas.iter().copied().fold(f64::INFINITY, f64::min);
    let beta_max = r.betas.iter().copied().fold(f64::NEG_INFINITY, f64::max);

    // From β = 1 on, which head widths give the bidirectional matrix the higher effective rank
    // at every n?
    let bidir_higher = |d: usize| {
        r.ns.iter().all(|&n| {
            betas_from_1.iter().all(|&b| {
                at(r, n, d, b, "bidirectional").effective_rank.mean
                    > at(r, n, d, b, "causal").effective_rank.mean
            })
        })
    };
    let from = threshold(&r.ds, bidir_higher);
    let below: Vec<usize> = r.ds.iter().copied().filter(|&d| from.is_none_or(|f| d < f)).collect();
    let text = match (from, below.first()) {
        (Some(f), None) => format!("at every head width of the grid (d ≥ {f}) and every n"),
        (Some(f), Some(&d0)) => {
            let (b, k) = (at(r, big_n, d0, 1.0, "bidirectional"), at(r, big_n, d0, 1.0, "causal"));
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

    // At the smallest β, which head widths put the bidirectional rank@1e-3 within 25% of d + 1
    // (at every n larger than d + 1, where the bound can bind)?
    let near = |d: usize| {
        r.ns.iter().filter(|&&n| n > d + 1).all(|&n| {
            let rank = at(r, n, d, beta_min, "bidirectional").rank_1e3.mean;
            (rank - (d + 1) as f64).abs() <= 0.25 * (d + 1) as f64
        })
    };
    let from = threshold(&r.ds, near);
    let below: Vec<usize> = r.ds.iter().copied().filter(|&d| from.is_none_or(|f| d < f)).collect();
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
    let ranks: Vec<(f64, f64)> =
        r.betas.iter().map(|&b| (b, at(r, big_n, big_d, b, "bidirectional").rank_1e3.mean)).collect();
    let (peak_beta, peak) =
        ranks.iter().copied().fold((f64::NAN, f64::NEG_INFINITY), |a, x| if x.1 > a.1 { x } else { a });
    let last = ranks.last().map_or(f64::NAN, |x| x.1);
    c.add(
        "rank_turns_over_at_large_beta",
        peak_beta < beta_max && last < peak,
        format!(
            "at n = {big_n} and d = {big_d} it climbs to {peak:.0} at β = {peak_beta} and falls back to {last:.0} at \
             β = {beta_max}"
        ),
    );

    // Conditioning: which mask is better conditioned, at the smallest β and from β = 1 on?
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
    let (b, k) = (at(r, big_n, big_d, beta_min, "bidirectional"), at(r, big_n, big_d, beta_min, "causal"));
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
    let (b, k) = (at(r, big_n, big_d, 1.0, "bidirectional"), at(r, big_n, big_d, 1.0, "causal"));
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

    // Collapse with skip connections: slowed or stopped, and which mask collapses faster.
    let series = |variant: &str, mask: &str| &r.collapse.series[variant][mask].log10_mean;
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
        format!("slow it down without stopping it within {} layers", r.collapse.layers),
    );
    let last = |variant: &str, mask: &str| *series(variant, mask).last().expect("layers");
    let faster = |variant: &str| {
        if last(variant, "causal") < last(variant, "bidirectional") { "causal" } else { "bidirectional" }
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
    let cond = |model: &str| r.trained.models[model].trained_means.block.as_ref().map(|m| m.log10_cond);
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
    c
}
