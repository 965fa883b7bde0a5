//! Placing a frame in a query name: unpadded base32 split into at most four
//! labels in front of the zone name.
//!
//! Base32 because resolvers may randomize letter case (0x20) and the name must
//! survive that; it is written in lower case and decoded case-insensitively.

use data_encoding::{BASE32_NOPAD, BASE32_NOPAD_NOCASE};

use super::error::{DecodeError, EncodeError};
use super::frame::{self, Report, ReportId};
use super::key::{Key, Keyring};
use super::payload::Payload;

pub use super::zone::{ZoneName, MAX_LABEL_LEN, MAX_NAME_LEN};

pub const MAX_PAYLOAD_LABELS: usize = 4;

/// Splits the base32 text of `frame` into as few labels as possible, of
/// nearly equal length (so that no label is conspicuously short).
pub fn frame_to_labels(frame: &[u8]) -> Result<Vec<String>, EncodeError> {
    let text = BASE32_NOPAD.encode(frame).to_ascii_lowercase();
    let count = text.len().div_ceil(MAX_LABEL_LEN).max(1);
    if count > MAX_PAYLOAD_LABELS {
        return Err(EncodeError::TooManyLabels(count));
    }
    let (base, extra) = (text.len() / count, text.len() % count);
    let mut labels = Vec::with_capacity(count);
    let mut rest = text.as_str();
    for i in 0..count {
        let (label, tail) = rest.split_at(base + usize::from(i < extra));
        labels.push(label.to_string());
        rest = tail;
    }
    Ok(labels)
}

/// Base32 characters of the smallest possible report (frame overhead and the
/// smallest plaintext): a name with fewer cannot be one. A QNAME-minimising
/// resolver's first questions (the last payload label alone) are shorter.
pub const MIN_REPORT_CHARS: usize = ((frame::OVERHEAD + super::payload::MIN_LEN) * 8).div_ceil(5);

/// The largest frame four labels of 63 base32 characters can carry.
pub const MAX_FRAME_LEN: usize = MAX_LABEL_LEN * MAX_PAYLOAD_LABELS * 5 / 8;

/// Joins payload labels (as they arrived, any letter case) and decodes them.
pub fn labels_to_frame(labels: &[&[u8]]) -> Result<Vec<u8>, DecodeError> {
    let mut frame = [0u8; MAX_FRAME_LEN];
    let len = labels_to_frame_in(labels, &mut frame)?;
    Ok(frame[..len].to_vec())
}

/// [`labels_to_frame`] into the caller's buffer, without allocating (the
/// answer path); returns the frame's length.
pub fn labels_to_frame_in(
    labels: &[&[u8]],
    frame: &mut [u8; MAX_FRAME_LEN],
) -> Result<usize, DecodeError> {
    if labels.is_empty() || labels.len() > MAX_PAYLOAD_LABELS {
        return Err(DecodeError::LabelCount(labels.len()));
    }
    let mut text = [0u8; MAX_LABEL_LEN * MAX_PAYLOAD_LABELS];
    let mut len = 0;
    for label in labels {
        if label.len() > MAX_LABEL_LEN {
            return Err(DecodeError::LabelTooLong);
        }
        text[len..len + label.len()].copy_from_slice(label);
        len += label.len();
    }
    if len < MIN_REPORT_CHARS {
        return Err(DecodeError::Partial(len));
    }
    let text = &text[..len];
    let out_len = BASE32_NOPAD_NOCASE
        .decode_len(text.len())
        .map_err(|_| DecodeError::Base32)?;
    BASE32_NOPAD_NOCASE
        .decode_mut(text, &mut frame[..out_len])
        .map_err(|_| DecodeError::Base32)
}

/// A fully-qualified query name (with trailing dot) for one report, and the
/// report's id. The nonce is fresh on every call.
pub fn encode_query_name(
    key: &Key,
    zone: &ZoneName,
    payload: &Payload,
) -> Result<(String, ReportId), EncodeError> {
    let id = ReportId::random();
    Ok((query_name(key, zone, id, payload)?, id))
}

/// Like [`encode_query_name`] with a chosen nonce (test vectors).
pub fn query_name(
    key: &Key,
    zone: &ZoneName,
    id: ReportId,
    payload: &Payload,
) -> Result<String, EncodeError> {
    frame_to_name(&frame::seal(key, zone, id, payload)?, zone)
}

/// The absolute query name (trailing dot) that carries `frame` under `zone`.
pub fn frame_to_name(frame: &[u8], zone: &ZoneName) -> Result<String, EncodeError> {
    let labels = frame_to_labels(frame)?;
    let mut name = labels.join(".");
    name.push('.');
    name.push_str(zone.as_str());
    if name.len() > MAX_NAME_LEN {
        return Err(EncodeError::NameTooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    name.push('.');
    Ok(name)
}

/// The payload labels of a whole name given as text (CLI and tests), which
/// must end in `zone`.
pub fn payload_labels<'a>(zone: &ZoneName, name: &'a str) -> Result<Vec<&'a [u8]>, DecodeError> {
    let name = name.trim_end_matches('.').as_bytes();
    let zone_len = zone.as_str().len();
    let Some(split) = name.len().checked_sub(zone_len + 1) else {
        return Err(DecodeError::LabelCount(0));
    };
    if name[split] != b'.' || !name[split + 1..].eq_ignore_ascii_case(zone.as_str().as_bytes()) {
        return Err(DecodeError::LabelCount(0));
    }
    Ok(name[..split].split(|b| *b == b'.').collect())
}

/// Decodes the payload labels of a name received under `zone`.
pub fn decode_labels(
    keyring: &Keyring,
    zone: &ZoneName,
    labels: &[&[u8]],
) -> Result<Report, DecodeError> {
    frame::open(keyring, zone, &labels_to_frame(labels)?)
}

/// Decodes a whole name given as text (CLI and tests): it must end in `zone`.
pub fn decode_query_name(
    keyring: &Keyring,
    zone: &ZoneName,
    name: &str,
) -> Result<Report, DecodeError> {
    decode_labels(keyring, zone, &payload_labels(zone, name)?)
}
