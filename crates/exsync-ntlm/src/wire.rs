//! Little-endian field access and the NTLM "security buffer" (length, capacity, offset) layout.

use crate::error::NtlmError;

pub(crate) const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

pub(crate) fn u16_at(buf: &[u8], at: usize) -> Result<u16, NtlmError> {
    let bytes = slice(buf, at, 2)?;
    Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
}

pub(crate) fn u32_at(buf: &[u8], at: usize) -> Result<u32, NtlmError> {
    let bytes = slice(buf, at, 4)?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

pub(crate) fn u64_at(buf: &[u8], at: usize) -> Result<u64, NtlmError> {
    let bytes = slice(buf, at, 8)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    Ok(u64::from_le_bytes(array))
}

pub(crate) fn slice(buf: &[u8], at: usize, len: usize) -> Result<&[u8], NtlmError> {
    at.checked_add(len)
        .and_then(|end| buf.get(at..end))
        .ok_or_else(|| {
            NtlmError::malformed(format!(
                "{len} bytes at offset {at} run past the end of a {}-byte message",
                buf.len()
            ))
        })
}

/// The bytes a security buffer at `at` points to.
pub(crate) fn field<'a>(buf: &'a [u8], at: usize, what: &str) -> Result<&'a [u8], NtlmError> {
    let len = usize::from(u16_at(buf, at)?);
    let offset = usize::try_from(u32_at(buf, at + 4)?)
        .map_err(|_| NtlmError::malformed(format!("{what} offset does not fit")))?;
    if len == 0 {
        return Ok(&[]);
    }
    slice(buf, offset, len).map_err(|_| {
        NtlmError::malformed(format!(
            "{what} ({len} bytes at {offset}) lies outside the message"
        ))
    })
}

/// The offset of a security buffer's data, or `None` when it is empty.
pub(crate) fn field_offset(buf: &[u8], at: usize) -> Result<Option<u32>, NtlmError> {
    if u16_at(buf, at)? == 0 {
        return Ok(None);
    }
    Ok(Some(u32_at(buf, at + 4)?))
}

/// Checks the signature and message type common to all three messages.
pub(crate) fn check_header(
    buf: &[u8],
    expected_type: u32,
    min_len: usize,
) -> Result<(), NtlmError> {
    if buf.len() < 12 || &buf[..8] != SIGNATURE {
        return Err(NtlmError::malformed("missing the NTLMSSP signature"));
    }
    let found = u32_at(buf, 8)?;
    if found != expected_type {
        return Err(NtlmError::UnexpectedMessageType {
            expected: expected_type,
            found,
        });
    }
    if buf.len() < min_len {
        return Err(NtlmError::malformed(format!(
            "message type {expected_type} needs at least {min_len} bytes, got {}",
            buf.len()
        )));
    }
    Ok(())
}

/// Builds a message: a fixed-size header followed by the payloads its security buffers point to.
pub(crate) struct MessageWriter {
    header: Vec<u8>,
    payload: Vec<u8>,
}

impl MessageWriter {
    pub(crate) fn new(message_type: u32, header_len: usize) -> Self {
        let mut header = vec![0u8; header_len];
        header[..8].copy_from_slice(SIGNATURE);
        header[8..12].copy_from_slice(&message_type.to_le_bytes());
        MessageWriter {
            header,
            payload: Vec::new(),
        }
    }

    pub(crate) fn put_u32(&mut self, at: usize, value: u32) {
        self.header[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn put_bytes(&mut self, at: usize, bytes: &[u8]) {
        self.header[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Appends `data` to the payload and points the security buffer at `at` to it. Empty fields
    /// still point at the current payload position, as Windows writes them.
    pub(crate) fn put_field(
        &mut self,
        at: usize,
        data: &[u8],
        what: &str,
    ) -> Result<(), NtlmError> {
        let len = u16::try_from(data.len())
            .map_err(|_| NtlmError::malformed(format!("{what} is too long for an NTLM field")))?;
        let offset = u32::try_from(self.header.len() + self.payload.len())
            .map_err(|_| NtlmError::malformed("NTLM message too large"))?;
        self.header[at..at + 2].copy_from_slice(&len.to_le_bytes());
        self.header[at + 2..at + 4].copy_from_slice(&len.to_le_bytes());
        self.header[at + 4..at + 8].copy_from_slice(&offset.to_le_bytes());
        self.payload.extend_from_slice(data);
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.header.extend_from_slice(&self.payload);
        self.header
    }
}

pub(crate) fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

pub(crate) fn from_utf16le(bytes: &[u8], what: &str) -> Result<String, NtlmError> {
    if bytes.len() % 2 != 0 {
        return Err(NtlmError::malformed(format!(
            "{what} has an odd number of bytes for UTF-16"
        )));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16(&units)
        .map_err(|_| NtlmError::malformed(format!("{what} is not valid UTF-16")))
}
