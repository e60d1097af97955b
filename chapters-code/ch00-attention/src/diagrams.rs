//! The four families as block diagrams, drawn from chapter 1's model shape: which
//! stack reads what, under which mask, and where the encoder-decoder's
//! cross-attention connects.

use anyhow::anyhow;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use transformer::plot::{Architecture, architecture_colour};

/// The colour of each mask, used for the same meaning in every panel: that of the
/// architecture it belongs to in every figure of the book (the encoder's, the
/// causal decoder's).
const BIDIRECTIONAL: RGBColor = architecture_colour(Architecture::Encoder);
const CAUSAL: RGBColor = architecture_colour(Architecture::CausalDecoder);

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A stack of `layers` blocks: its box, its label and the mask it runs with, in
/// pixels.
struct Stack<'a> {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    label: &'a str,
    /// Fraction of the width drawn bidirectional (the rest causal): 1 for an
    /// encoder, 0 for a decoder, in between for a prefix LM.
    bidirectional: f64,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn text(
    area: &Area,
    s: &str,
    (x, y): (i32, i32),
    size: u32,
    anchor_center: bool,
) -> anyhow::Result<()> {
    let pos = if anchor_center {
        Pos::new(HPos::Center, VPos::Center)
    } else {
        Pos::new(HPos::Left, VPos::Center)
    };
    let style =
        TextStyle::from(("sans-serif", size).into_font()).color(&BLACK).pos(pos);
    area.draw(&Text::new(s.to_string(), (x, y), style)).map_err(err)
}

fn arrow(area: &Area, from: (i32, i32), to: (i32, i32)) -> anyhow::Result<()> {
    area.draw(&PathElement::new(vec![from, to], BLACK.stroke_width(2)))
        .map_err(err)?;
    let (dx, dy) = ((to.0 - from.0) as f64, (to.1 - from.1) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let head = |side: f64| {
        let (px, py) = (-uy * side, ux * side);
        (
            (to.0 as f64 - 9.0 * ux + 5.0 * px) as i32,
            (to.1 as f64 - 9.0 * uy + 5.0 * py) as i32,
        )
    };
    area.draw(&Polygon::new(vec![to, head(1.0), head(-1.0)], BLACK.filled()))
        .map_err(err)
}

/// An arrow into a stack from below, labelled with what flows in.
fn feed(
    area: &Area,
    x: i32,
    bottom: i32,
    to_y: i32,
    label: &str,
) -> anyhow::Result<()> {
    arrow(area, (x, bottom + 20), (x, to_y))?;
    text(area, label, (x, bottom + 32), 12, true)
}

/// An arrow out of a stack to the top, labelled with what comes out.
fn emit(
    area: &Area,
    x: i32,
    from_y: i32,
    top: i32,
    label: &str,
) -> anyhow::Result<()> {
    arrow(area, (x, from_y), (x, top))?;
    text(area, label, (x, top - 12), 12, true)
}

fn stack(area: &Area, s: &Stack, layers: usize) -> anyhow::Result<()> {
    let split = s.x + (s.w as f64 * s.bidirectional).round() as i32;
    if split > s.x {
        area.draw(&Rectangle::new(
            [(s.x, s.y), (split, s.y + s.h)],
            BIDIRECTIONAL.mix(0.25).filled(),
        ))
        .map_err(err)?;
    }
    if split < s.x + s.w {
        area.draw(&Rectangle::new(
            [(split, s.y), (s.x + s.w, s.y + s.h)],
            CAUSAL.mix(0.25).filled(),
        ))
        .map_err(err)?;
    }
    area.draw(&Rectangle::new(
        [(s.x, s.y), (s.x + s.w, s.y + s.h)],
        BLACK.stroke_width(1),
    ))
    .map_err(err)?;
    text(area, s.label, (s.x + s.w / 2, s.y + s.h / 2 - 9), 14, true)?;
    text(
        area,
        &format!("× {layers} blocks"),
        (s.x + s.w / 2, s.y + s.h / 2 + 10),
        13,
        true,
    )
}

/// The four panels: encoder-only, encoder-decoder, decoder-only, prefix LM.
pub fn families(layers: usize) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (760, 330)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let titles = [
            "Encoder-only (BERT)",
            "Encoder-decoder (T5, BART)",
            "Decoder-only (GPT)",
            "Prefix LM (UniLM)",
        ];
        let col = 190;
        for (i, title) in titles.iter().enumerate() {
            text(&root, title, (col * i as i32 + col / 2, 18), 14, true)?;
        }
        let (top, h, bottom) = (70, 70, 250);
        // The one stack of panel `i`, centred in its column.
        let one_stack = |i: i32, label, bidirectional| Stack {
            x: i * col + 25,
            y: top + 40,
            w: 140,
            h,
            label,
            bidirectional,
        };
        // Encoder-only: tokens in, one bidirectional stack, a vector per token out.
        let enc = one_stack(0, "encoder", 1.0);
        stack(&root, &enc, layers)?;
        feed(&root, 95, bottom, enc.y + h, "all tokens")?;
        emit(&root, 95, enc.y, top, "a vector per token")?;
        // Encoder-decoder: input into the encoder, its final states into every
        // decoder block.
        let e = Stack {
            x: col + 10,
            y: top + 90,
            w: 80,
            h,
            label: "encoder",
            bidirectional: 1.0,
        };
        let d = Stack {
            x: col + 100,
            y: top + 10,
            w: 80,
            h,
            label: "decoder",
            bidirectional: 0.0,
        };
        stack(&root, &e, layers)?;
        stack(&root, &d, layers)?;
        feed(&root, e.x + 40, bottom, e.y + h, "input")?;
        arrow(&root, (e.x + 40, e.y), (d.x, d.y + h / 2))?;
        text(&root, "cross-attention", (e.x - 10, e.y - 50), 11, false)?;
        text(&root, "(every block)", (e.x - 10, e.y - 37), 11, false)?;
        feed(&root, d.x + 40, bottom, d.y + h, "output so far")?;
        emit(&root, d.x + 40, d.y, top - 20, "next token")?;
        // Decoder-only: one causal stack over everything.
        let dec = one_stack(2, "decoder", 0.0);
        stack(&root, &dec, layers)?;
        feed(&root, dec.x + 70, bottom, dec.y + h, "input, then output so far")?;
        emit(&root, dec.x + 70, dec.y, top, "next token")?;
        // Prefix LM: the same stack, bidirectional over the prefix, causal after
        // it.
        let p = one_stack(3, "one stack", 0.45);
        stack(&root, &p, layers)?;
        feed(&root, p.x + 30, bottom, p.y + h, "prefix")?;
        feed(&root, p.x + 105, bottom, p.y + h, "output so far")?;
        emit(&root, p.x + 105, p.y, top, "next token")?;
        // Legend: what the two fills mean.
        for (k, (c, label)) in [
            (BIDIRECTIONAL, "bidirectional: every token reads every token"),
            (CAUSAL, "causal: a token reads itself and the past"),
        ]
        .into_iter()
        .enumerate()
        {
            let x = 40 + 360 * k as i32;
            root.draw(&Rectangle::new(
                [(x, 306), (x + 18, 320)],
                c.mix(0.25).filled(),
            ))
            .map_err(err)?;
            root.draw(&Rectangle::new(
                [(x, 306), (x + 18, 320)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
            text(&root, label, (x + 26, 313), 12, false)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}
