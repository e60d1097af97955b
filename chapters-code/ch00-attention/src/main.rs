//! `ch00-attention`: regenerate the on-ramp's worked example and diagrams.

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch00_attention::Settings>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
