extern crate bytes;
extern crate nom;

pub mod common;
pub mod parse;
pub mod structure;
pub mod structures;
pub mod universal;
pub mod write;

pub use nom::{Err, IResult};
pub use parse::Parser;
