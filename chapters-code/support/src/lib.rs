//! Small pieces with no dependencies, shared by the library (`transformer`), the
//! real models' crate and the developer commands (`xtask`), which must not depend
//! on the library's heavy crates: the geometry that places a figure's legend away
//! from its lines and that the figure check uses to confirm it, and the name of the
//! processor a run measured times on.

/// A rectangle in pixels: left, top, right, bottom.
pub type Rect = [f64; 4];

/// Whether the segment from `p` to `q` touches the rectangle `r` (Liang–Barsky
/// clipping).
pub fn segment_meets_rect(p: (f64, f64), q: (f64, f64), r: Rect) -> bool {
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (d, room) in
        [(-dx, p.0 - r[0]), (dx, r[2] - p.0), (-dy, p.1 - r[1]), (dy, r[3] - p.1)]
    {
        if d == 0.0 {
            if room < 0.0 {
                return false;
            }
        } else {
            let t = room / d;
            if d < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

/// The processor's name as Linux reports it (`model name` in `/proc/cpuinfo`), or
/// "unknown CPU".
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| cpu_name_in(&t))
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// The first `model name` in the text of a `/proc/cpuinfo`.
fn cpu_name_in(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_that_cross_touch_or_miss_a_rectangle() {
        let r = [0.0, 0.0, 10.0, 10.0];
        assert!(segment_meets_rect((-5.0, 5.0), (15.0, 5.0), r), "crosses");
        assert!(segment_meets_rect((2.0, 2.0), (3.0, 3.0), r), "inside");
        assert!(segment_meets_rect((10.0, -5.0), (10.0, 15.0), r), "along an edge");
        assert!(!segment_meets_rect((-5.0, -1.0), (15.0, -1.0), r), "above");
        assert!(!segment_meets_rect((11.0, 0.0), (20.0, 10.0), r), "to the right");
        assert!(
            !segment_meets_rect((-1.0, 12.0), (12.0, 25.0), r),
            "diagonal miss"
        );
        assert!(
            !segment_meets_rect((-3.0, 3.0), (-3.0, 3.0), r),
            "a point outside"
        );
        assert!(segment_meets_rect((5.0, 5.0), (5.0, 5.0), r), "a point inside");
    }

    #[test]
    fn the_processor_name_is_the_first_model_name() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC  \nflags\t: avx\n\
                    processor\t: 1\nmodel name\t: AMD EPYC\n";
        assert_eq!(cpu_name_in(text).as_deref(), Some("AMD EPYC"));
        assert_eq!(cpu_name_in("processor\t: 0\n"), None);
    }
}
