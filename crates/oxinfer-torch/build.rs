//! Compiles the small C++ shim (`src/shim.cpp`) that reads a TorchScript
//! method's signature and enters inference mode, which tch does not expose,
//! against the libtorch that torch-sys found.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/shim.cpp");
    // torch-sys (links = "tch") publishes the libtorch library folder.
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys did not report libtorch's folder (set LIBTORCH; see scripts/libtorch.mjs)"));
    let root = lib.parent().expect("libtorch's lib folder has a parent").to_path_buf();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("src/shim.cpp")
        .compile("oxinfer_torch_shim");
    // No run path: the host loads libtorch before the plugin (as a user's
    // machine needs), and this crate's tests get it from LD_LIBRARY_PATH
    // (scripts/build-torch.mjs test).
}
