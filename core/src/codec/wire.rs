//! The wire side of retrieve: where a source's output goes (the page packer for STRU P, then
//! the mode's encoder), shared by the sources of [`super::pipeline`] and [`super::text`].

use super::block::BlockEncoder;
use super::compressed::CompressedEncoder;
use super::deflate::DeflateEncoder;
use super::page::PageEncoder;
use super::stream::StreamEncoder;
use super::{CodecError, DataFormat, Mode, Representation, Structure};

/// Where a source's output goes: the page packer if any, then the mode.
pub(super) struct Wire<'a> {
    pub(super) pages: Option<&'a mut PageEncoder>,
    pub(super) page_bytes: &'a mut Vec<u8>,
    pub(super) mode: &'a mut ModeEncoder,
    pub(super) out: &'a mut Vec<u8>,
}

impl Wire<'_> {
    /// Data in the wire's representation.
    pub(super) fn data(&mut self, data: &[u8]) -> Result<(), CodecError> {
        if data.is_empty() {
            return Ok(());
        }
        match self.pages.as_mut() {
            Some(pages) => {
                self.page_bytes.clear();
                pages.data(data, self.page_bytes)?;
                self.mode.data(self.page_bytes, self.out)?;
                self.page_bytes.clear();
                Ok(())
            }
            None => self.mode.data(data, self.out),
        }
    }

    /// The end of a record.
    pub(super) fn eor(&mut self) -> Result<(), CodecError> {
        self.mode.eor(self.out)
    }
}

/// The mode on retrieve.
#[derive(Debug)]
pub(super) enum ModeEncoder {
    Stream(StreamEncoder),
    Block(BlockEncoder),
    Compressed(Box<CompressedEncoder>),
    Deflate(Box<DeflateEncoder>),
}

impl ModeEncoder {
    pub(super) fn new(format: DataFormat) -> ModeEncoder {
        let records = format.structure == Structure::Record;
        match format.mode {
            Mode::Stream => ModeEncoder::Stream(StreamEncoder::new(records)),
            Mode::Block => ModeEncoder::Block(BlockEncoder::default()),
            Mode::Compressed => ModeEncoder::Compressed(Box::new(CompressedEncoder::new(filler(
                format.representation,
            )))),
            Mode::Deflate { level } => {
                ModeEncoder::Deflate(Box::new(DeflateEncoder::new(level, records)))
            }
        }
    }

    pub(super) fn data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            ModeEncoder::Stream(s) => s.data(data, out),
            ModeEncoder::Block(b) => b.data(data, out),
            ModeEncoder::Compressed(c) => c.data(data, out),
            ModeEncoder::Deflate(z) => return z.data(data, out),
        }
        Ok(())
    }

    pub(super) fn eor(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            ModeEncoder::Stream(s) => s.eor(out),
            ModeEncoder::Block(b) => b.eor(out),
            ModeEncoder::Compressed(c) => c.eor(out),
            ModeEncoder::Deflate(z) => return z.eor(out),
        }
        Ok(())
    }

    pub(super) fn marker(&mut self, text: &[u8], out: &mut Vec<u8>) {
        match self {
            ModeEncoder::Block(b) => b.marker(text, out),
            ModeEncoder::Compressed(c) => c.marker(text, out),
            ModeEncoder::Stream(_) | ModeEncoder::Deflate(_) => {}
        }
    }

    pub(super) fn eof(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            ModeEncoder::Stream(s) => s.eof(out),
            ModeEncoder::Block(b) => b.eof(out),
            ModeEncoder::Compressed(c) => c.eof(out),
            ModeEncoder::Deflate(z) => return z.eof(out),
        }
        Ok(())
    }
}

/// MODE C's filler byte: the wire's space for text, zero for TYPE I.
pub(super) fn filler(representation: Representation) -> u8 {
    match representation {
        Representation::Image => 0x00,
        Representation::Ascii(_) => 0x20,
        Representation::Ebcdic(..) => 0x40,
    }
}
