//! `tickline`: replay captures through the pinned pipeline, generate synthetic feeds, run the demo,
//! run the live engine and control it while it runs (`tickline ctl`).

#[global_allocator]
static ALLOC: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;

fn main() {
    tools::cli::main()
}
