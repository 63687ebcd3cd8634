//! The component's size budget: 700 KiB (716,800 bytes), as built here
//! (shrunk by binaryen's `wasm-opt -Oz`, which `scripts/setup.sh`
//! installs). A build without `wasm-opt` ships the component unshrunk and
//! says so in a warning; the budget is checked only when it was shrunk.

/// The budget, in bytes.
const BUDGET: u64 = 700 * 1024;

#[test]
fn the_component_stays_within_its_size_budget() {
    let wasm_opt = std::env::var_os("WASM_OPT").unwrap_or_else(|| "wasm-opt".into());
    let shrunk = std::process::Command::new(&wasm_opt)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let size = std::fs::metadata(host_test::COMPONENT_PATH).unwrap().len();
    if !shrunk {
        eprintln!("wasm-opt is not installed: the component ({size} bytes) is unshrunk, its budget not checked");
        return;
    }
    assert!(
        size <= BUDGET,
        "the component is {size} bytes, over its budget of {BUDGET} by {}",
        size - BUDGET
    );
}
