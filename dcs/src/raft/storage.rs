//! TODO (storage helper): see the task description.
use crate::error::DcsError;

/// Handle on the node's redb file.
#[derive(Clone)]
pub(crate) struct Storage {}

impl Storage {
    pub(crate) async fn read_meta(&self, _key: &str) -> Result<Option<Vec<u8>>, DcsError> {
        todo!()
    }
    pub(crate) async fn write_meta(&self, _key: &str, _value: &[u8]) -> Result<(), DcsError> {
        todo!()
    }
}
