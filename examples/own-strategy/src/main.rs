//! `own-tickline`: Tickline's whole command line (`replay`, `run`, `ctl`, ...) with the `dip`
//! strategy of this crate known to `--strategy`.

// Counts allocations, so the summary's "allocations during the run" is measured here too.
#[global_allocator]
static ALLOC: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;

fn main() {
    tools::cli::main_with(own_strategy::factory)
}
