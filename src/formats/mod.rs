//! The formats other tools read: GeoJSON for GIS clients, CSV for
//! spreadsheets, CloudEvents for brokers. Pure: views and stored events in,
//! bytes out, no IO and no HTTP; the API and the command line both write
//! through here, so a format has one definition.

pub mod cloudevents;
pub mod csv;
pub mod events_csv;
pub mod geojson;
mod row;

pub use row::{location_row, LOCATION_COLUMNS};
