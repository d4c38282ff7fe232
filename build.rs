//! Link settings that depend on cargo features.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A `dynamic-backends` build links llama.cpp as shared libraries and loads ggml's CPU
    // variants and GPU backends as modules at run time. The binary looks for them in its
    // own folder, so it runs without LD_LIBRARY_PATH and can be copied elsewhere with them.
    if std::env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_some() {
        match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
            Ok("macos") => println!("cargo:rustc-link-arg=-Wl,-rpath,@executable_path"),
            Ok("windows") => {}
            _ => println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN"),
        }
        if let Err(err) = place_shared_libraries() {
            println!("cargo:warning=cannot put llama.cpp's libraries beside the binary: {err}");
        }
    }
}

/// ggml's CPU variants left out. `sapphirerapids` multiplies with AMX tiles: a weight
/// layout and kernels of their own for products of several rows, so a sequence's
/// arithmetic would depend on the batch (promptlab's outputs must not), and on the
/// Sapphire Rapids VM this was measured on its first `tileloadd` killed the process
/// (SIGILL). Without it llama.cpp picks the best AVX-512 variant (`zen4`, `icelake`, …).
const SKIPPED_CPU_VARIANTS: &[&str] = &["libggml-cpu-sapphirerapids"];

/// llama-cpp-sys-2 hard-links `libllama.so` into the target folder, but that file is a
/// symbolic link to `libllama.so.0`, which it leaves behind, so the binary would not start.
/// This copies the whole set (the libraries with their version links, and the backend
/// modules but the skipped ones) from llama-cpp-sys-2's build into the folder the binary
/// is written to, which is where promptlab loads the backends from.
fn place_shared_libraries() -> std::io::Result<()> {
    let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR").map(PathBuf::from) else {
        return Ok(());
    };
    println!("cargo:rerun-if-env-changed=DEP_LLAMA_BACKENDS_DIR");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    // OUT_DIR is <target>/<profile>/build/promptlab-<hash>/out.
    let Some(beside_binary) = out_dir.ancestors().nth(3) else {
        return Ok(());
    };
    let libraries = backends.parent().map(|out| out.join("lib"));
    for folder in libraries.iter().chain([&backends]) {
        for entry in std::fs::read_dir(folder)? {
            let entry = entry?;
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if !(text.contains(".so") || text.ends_with(".dylib") || text.ends_with(".dll")) {
                continue;
            }
            let target = beside_binary.join(&name);
            if SKIPPED_CPU_VARIANTS.iter().any(|v| text.starts_with(v)) {
                if target.symlink_metadata().is_ok() {
                    std::fs::remove_file(&target)?;
                }
                continue;
            }
            copy_entry(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies a file, or re-creates a symbolic link as it is.
fn copy_entry(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.symlink_metadata().is_ok() {
        std::fs::remove_file(to)?;
    }
    let metadata = from.symlink_metadata()?;
    #[cfg(unix)]
    if metadata.file_type().is_symlink() {
        return std::os::unix::fs::symlink(std::fs::read_link(from)?, to);
    }
    let _ = metadata;
    std::fs::copy(from, to).map(|_| ())
}
