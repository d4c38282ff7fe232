//! Link settings that depend on cargo features.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A `dynamic-backends` build links llama.cpp as shared libraries, which llama-cpp-sys-2
    // places beside the binary (and ggml loads its CPU variants and GPU backends from there
    // too): the binary looks for them in its own folder, so it runs without
    // LD_LIBRARY_PATH and can be copied elsewhere with them.
    if std::env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_some() {
        match std::env::var("CARGO_CFG_TARGET_OS").as_deref() {
            Ok("macos") => println!("cargo:rustc-link-arg=-Wl,-rpath,@executable_path"),
            Ok("windows") => {}
            _ => println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN"),
        }
    }
}
