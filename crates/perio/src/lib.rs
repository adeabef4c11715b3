//! perio (docs to come)

pub mod chart;
mod error;
pub mod fixtures;
pub mod lexicon;
pub mod outcome;
pub mod parse;
pub mod path;
mod resolve;
pub mod session;
pub mod site;
pub mod token;
pub mod tooth;

pub use chart::{Chart, Entrance, Flag, ToothStatus};
pub use error::Error;
pub use outcome::{Event, Mode, Outcome, Reject, RejectReason, Status, Warning};
pub use parse::{Parse, parse};
pub use path::{ChartingPath, Cursor};
pub use session::{Session, Settings};
pub use site::{Site, Surface};
pub use tooth::{Numbering, Tooth};
