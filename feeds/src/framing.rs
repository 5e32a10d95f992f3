//! Little-endian field access and the header checksum shared by the project's binary file
//! formats (the `.tlc` capture and the order journal).

/// CRC32 of a header, skipping the 4 bytes at `crc_at` where the checksum itself is stored.
pub(crate) fn header_crc(h: &[u8], crc_at: usize) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&h[..crc_at]);
    c.update(&h[crc_at + 4..]);
    c.finalize()
}

/// The little-endian `u16` at `at` (the caller has checked the length).
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The little-endian `u32` at `at` (the caller has checked the length).
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The little-endian `u64` at `at` (the caller has checked the length).
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
