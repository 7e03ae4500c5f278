//! Stored files that a data format carries unchanged, for the codecs' property tests and
//! their fuzz targets.

use super::{DataFormat, Representation, Structure};

/// A stored file made from `seed` that `format` carries unchanged: no CR in TYPE A's STRU F and
/// P, Latin-1 characters for TYPE E, a final LF for text records, TYPE I records in their
/// stored form (split at LF bytes).
pub(crate) fn carried(format: DataFormat, seed: &[u8]) -> Vec<u8> {
    let records = format.structure == Structure::Record;
    let mut text = match format.representation {
        Representation::Image if records => return record_form(seed),
        Representation::Image => return seed.to_vec(),
        // STRU R keeps CRs as they are; elsewhere a CR before LF would be taken for a line end.
        Representation::Ascii(_) if records => seed.to_vec(),
        Representation::Ascii(_) => seed.iter().copied().filter(|&b| b != b'\r').collect(),
        Representation::Ebcdic(..) => seed
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .into_bytes(),
    };
    // A record is a line: the last one comes back with its LF.
    if records && text.last().is_some_and(|&b| b != b'\n') {
        text.push(b'\n');
    }
    text
}

/// TYPE I STRU R's stored form of the records of `seed` split at LF bytes.
fn record_form(seed: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if seed.is_empty() {
        return vec![0xFF, 2];
    }
    let records: Vec<&[u8]> = seed.split(|&b| b == b'\n').collect();
    for (i, record) in records.iter().enumerate() {
        for &b in record.iter() {
            out.push(b);
            if b == 0xFF {
                out.push(0xFF);
            }
        }
        let code = if i + 1 == records.len() { 3 } else { 1 };
        out.extend_from_slice(&[0xFF, code]);
    }
    out
}
