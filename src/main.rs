//! The `subtitle` command: a thin shell over [`app`].

mod app;

fn main() {
    app::main();
}
