//! Server ids and their natural order (defined in [`filegrid_proto::ids`]).

pub use filegrid_proto::ids::*;
