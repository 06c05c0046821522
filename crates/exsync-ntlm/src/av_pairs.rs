//! The AV_PAIR list ([MS-NLMP] §2.2.2.1) carried as the server's TargetInfo and echoed, extended,
//! inside the client's NTLMv2 response.

use crate::error::NtlmError;
use crate::wire::{u16_at, u32_at, u64_at, utf16le};

pub(crate) const MSV_AV_EOL: u16 = 0;
pub(crate) const MSV_AV_NB_COMPUTER_NAME: u16 = 1;
pub(crate) const MSV_AV_NB_DOMAIN_NAME: u16 = 2;
pub(crate) const MSV_AV_DNS_COMPUTER_NAME: u16 = 3;
pub(crate) const MSV_AV_DNS_DOMAIN_NAME: u16 = 4;
pub(crate) const MSV_AV_FLAGS: u16 = 6;
pub(crate) const MSV_AV_TIMESTAMP: u16 = 7;
pub(crate) const MSV_AV_TARGET_NAME: u16 = 9;
pub(crate) const MSV_AV_CHANNEL_BINDINGS: u16 = 10;

/// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
pub(crate) const AV_FLAG_MIC_PRESENT: u32 = 0x0000_0002;

/// An ordered AV_PAIR list without its terminating MsvAvEOL (added back by [`AvPairs::encode`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AvPairs(Vec<(u16, Vec<u8>)>);

impl AvPairs {
    pub(crate) fn new() -> Self {
        AvPairs(Vec::new())
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, NtlmError> {
        let mut pairs = Vec::new();
        let mut at = 0usize;
        loop {
            if at + 4 > bytes.len() {
                return Err(NtlmError::malformed("AV pair list ends without MsvAvEOL"));
            }
            let id = u16_at(bytes, at)?;
            let len = usize::from(u16_at(bytes, at + 2)?);
            if id == MSV_AV_EOL {
                return Ok(AvPairs(pairs));
            }
            let value = bytes
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| NtlmError::malformed(format!("AV pair {id} runs past the list")))?;
            pairs.push((id, value.to_vec()));
            at += 4 + len;
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, NtlmError> {
        let mut out = Vec::new();
        for (id, value) in &self.0 {
            let len = u16::try_from(value.len())
                .map_err(|_| NtlmError::malformed(format!("AV pair {id} is too long")))?;
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        Ok(out)
    }

    pub(crate) fn get(&self, id: u16) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(pair_id, _)| *pair_id == id)
            .map(|(_, value)| value.as_slice())
    }

    /// Replaces the first pair with this id, or appends one.
    pub(crate) fn set(&mut self, id: u16, value: Vec<u8>) {
        match self.0.iter_mut().find(|(pair_id, _)| *pair_id == id) {
            Some(pair) => pair.1 = value,
            None => self.0.push((id, value)),
        }
    }

    pub(crate) fn set_text(&mut self, id: u16, text: &str) {
        self.set(id, utf16le(text));
    }

    pub(crate) fn timestamp(&self) -> Result<Option<u64>, NtlmError> {
        match self.get(MSV_AV_TIMESTAMP) {
            None => Ok(None),
            Some(value) if value.len() == 8 => Ok(Some(u64_at(value, 0)?)),
            Some(_) => Err(NtlmError::malformed("MsvAvTimestamp is not 8 bytes")),
        }
    }

    pub(crate) fn flags(&self) -> Result<u32, NtlmError> {
        match self.get(MSV_AV_FLAGS) {
            None => Ok(0),
            Some(value) if value.len() == 4 => u32_at(value, 0),
            Some(_) => Err(NtlmError::malformed("MsvAvFlags is not 4 bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trips_and_keeps_order() {
        let mut pairs = AvPairs::new();
        pairs.set_text(MSV_AV_NB_DOMAIN_NAME, "Domain");
        pairs.set_text(MSV_AV_NB_COMPUTER_NAME, "Server");
        pairs.set(MSV_AV_FLAGS, 2u32.to_le_bytes().to_vec());
        let bytes = pairs.encode().unwrap();
        let back = AvPairs::parse(&bytes).unwrap();
        assert_eq!(back, pairs);
        assert_eq!(back.flags().unwrap(), 2);
        assert_eq!(&bytes[bytes.len() - 4..], &[0, 0, 0, 0]);
    }

    #[test]
    fn a_list_without_eol_is_malformed() {
        let mut bytes = AvPairs::new().encode().unwrap();
        bytes.truncate(2);
        assert!(matches!(
            AvPairs::parse(&bytes),
            Err(NtlmError::Malformed { .. })
        ));
        assert!(AvPairs::parse(&[1, 0, 200, 0, 1, 2]).is_err());
    }
}
