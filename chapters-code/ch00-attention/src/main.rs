//! `ch00-attention`: regenerate the on-ramp's worked example and diagrams.

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch00_attention::Attention>()
}
