//! Every option that takes one of a fixed set of names, declared once: napi
//! converts the JS string into these enums (refusing any other), the
//! generated `binding.d.ts` gives TS their string unions, and the TS layer
//! lists the allowed names in its messages from the same objects at run time.

use oxinfer_core::image::{ChannelOrder, Color, Filter};
use oxinfer_core::job::{InputFormat, OutputFormat};
use oxinfer_core::onnx::library::LogLevel as OrtLogLevel;
use oxinfer_core::onnx::GraphOptimization as OrtGraphOptimization;
use oxinfer_core::text::{OffsetUnit, Padding, TruncationStrategy};
use oxinfer_core::ErrorCode as CoreCode;

/// The stable error codes (`error.code` in JS), as the core defines them.
#[napi(string_enum)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    ERR_INVALID_ARGUMENT,
    ERR_INVALID_INPUT,
    ERR_MODEL_LOAD,
    ERR_FILE,
    ERR_INVALID_SPEC,
    ERR_UNSUPPORTED,
    ERR_ABORTED,
    ERR_DISPOSED,
    ERR_OVERLOADED,
    ERR_TIMEOUT,
    ERR_BACKEND,
    ERR_UNAVAILABLE,
}

impl From<CoreCode> for ErrorCode {
    // Exhaustive both ways: a code added to the core fails this build until
    // it is declared here, so the two lists cannot drift.
    fn from(c: CoreCode) -> Self {
        match c {
            CoreCode::InvalidArgument => ErrorCode::ERR_INVALID_ARGUMENT,
            CoreCode::InvalidInput => ErrorCode::ERR_INVALID_INPUT,
            CoreCode::ModelLoad => ErrorCode::ERR_MODEL_LOAD,
            CoreCode::File => ErrorCode::ERR_FILE,
            CoreCode::InvalidSpec => ErrorCode::ERR_INVALID_SPEC,
            CoreCode::Unsupported => ErrorCode::ERR_UNSUPPORTED,
            CoreCode::Aborted => ErrorCode::ERR_ABORTED,
            CoreCode::Disposed => ErrorCode::ERR_DISPOSED,
            CoreCode::Overloaded => ErrorCode::ERR_OVERLOADED,
            CoreCode::Timeout => ErrorCode::ERR_TIMEOUT,
            CoreCode::Backend => ErrorCode::ERR_BACKEND,
            CoreCode::Unavailable => ErrorCode::ERR_UNAVAILABLE,
        }
    }
}

impl From<ErrorCode> for CoreCode {
    fn from(c: ErrorCode) -> Self {
        match c {
            ErrorCode::ERR_INVALID_ARGUMENT => CoreCode::InvalidArgument,
            ErrorCode::ERR_INVALID_INPUT => CoreCode::InvalidInput,
            ErrorCode::ERR_MODEL_LOAD => CoreCode::ModelLoad,
            ErrorCode::ERR_FILE => CoreCode::File,
            ErrorCode::ERR_INVALID_SPEC => CoreCode::InvalidSpec,
            ErrorCode::ERR_UNSUPPORTED => CoreCode::Unsupported,
            ErrorCode::ERR_ABORTED => CoreCode::Aborted,
            ErrorCode::ERR_DISPOSED => CoreCode::Disposed,
            ErrorCode::ERR_OVERLOADED => CoreCode::Overloaded,
            ErrorCode::ERR_TIMEOUT => CoreCode::Timeout,
            ErrorCode::ERR_BACKEND => CoreCode::Backend,
            ErrorCode::ERR_UNAVAILABLE => CoreCode::Unavailable,
        }
    }
}

/// ONNX Runtime's graph optimisation level.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphOptimization {
    None,
    Basic,
    Extended,
    All,
}

impl From<GraphOptimization> for OrtGraphOptimization {
    fn from(g: GraphOptimization) -> Self {
        match g {
            GraphOptimization::None => OrtGraphOptimization::None,
            GraphOptimization::Basic => OrtGraphOptimization::Basic,
            GraphOptimization::Extended => OrtGraphOptimization::Extended,
            GraphOptimization::All => OrtGraphOptimization::All,
        }
    }
}

/// OS priority of the inference threads.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerPriority {
    Low,
    Normal,
}

/// ONNX Runtime's log level.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Verbose,
    Info,
    Warning,
    Error,
    Fatal,
}

impl From<LogLevel> for OrtLogLevel {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Verbose => OrtLogLevel::Verbose,
            LogLevel::Info => OrtLogLevel::Info,
            LogLevel::Warning => OrtLogLevel::Warning,
            LogLevel::Error => OrtLogLevel::Error,
            LogLevel::Fatal => OrtLogLevel::Fatal,
        }
    }
}

/// A batch job's file format.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Jsonl,
}

impl From<FileFormat> for InputFormat {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Csv => InputFormat::Csv,
            FileFormat::Jsonl => InputFormat::Jsonl,
        }
    }
}

impl From<FileFormat> for OutputFormat {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Csv => OutputFormat::Csv,
            FileFormat::Jsonl => OutputFormat::Jsonl,
        }
    }
}

/// How images are resized before cropping.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageResize {
    None,
    Exact,
    Shorter,
}

#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFilter {
    Bilinear,
    Nearest,
}

impl From<ImageFilter> for Filter {
    fn from(f: ImageFilter) -> Self {
        match f {
            ImageFilter::Bilinear => Filter::Bilinear,
            ImageFilter::Nearest => Filter::Nearest,
        }
    }
}

#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageColor {
    Rgb,
    Gray,
}

impl From<ImageColor> for Color {
    fn from(c: ImageColor) -> Self {
        match c {
            ImageColor::Rgb => Color::Rgb,
            ImageColor::Gray => Color::Gray,
        }
    }
}

/// Channel order of an image tensor.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageLayout {
    Chw,
    Hwc,
}

impl From<ImageLayout> for ChannelOrder {
    fn from(l: ImageLayout) -> Self {
        match l {
            ImageLayout::Chw => ChannelOrder::Chw,
            ImageLayout::Hwc => ChannelOrder::Hwc,
        }
    }
}

/// The element type of an image tensor: scaled floats, or raw pixels.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageOutput {
    Float32,
    Uint8,
}

/// Which sequence of a pair loses tokens first when truncating.
#[napi(string_enum = "snake_case")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

impl From<Truncation> for TruncationStrategy {
    fn from(t: Truncation) -> Self {
        match t {
            Truncation::LongestFirst => TruncationStrategy::LongestFirst,
            Truncation::OnlyFirst => TruncationStrategy::OnlyFirst,
            Truncation::OnlySecond => TruncationStrategy::OnlySecond,
        }
    }
}

/// How a batch of encodings is padded ('none' is `padding: false` in TS).
#[napi(string_enum = "snake_case")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextPadding {
    None,
    Longest,
    MaxLength,
}

impl From<TextPadding> for Padding {
    fn from(p: TextPadding) -> Self {
        match p {
            TextPadding::None => Padding::None,
            TextPadding::Longest => Padding::Longest,
            TextPadding::MaxLength => Padding::MaxLength,
        }
    }
}

/// The unit of token offsets.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offsets {
    Utf16,
    Chars,
    Bytes,
}

impl From<Offsets> for OffsetUnit {
    fn from(o: Offsets) -> Self {
        match o {
            Offsets::Utf16 => OffsetUnit::Utf16,
            Offsets::Chars => OffsetUnit::Chars,
            Offsets::Bytes => OffsetUnit::Bytes,
        }
    }
}

/// The element type of token id tensors.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdType {
    Int32,
    Int64,
}

/// What a pipeline does with record keys (or file columns) its spec does not declare.
#[napi(string_enum = "lowercase")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownFields {
    Error,
    Ignore,
}

impl From<UnknownFields> for oxinfer_core::pipeline::spec::UnknownFields {
    fn from(u: UnknownFields) -> Self {
        match u {
            UnknownFields::Error => Self::Error,
            UnknownFields::Ignore => Self::Ignore,
        }
    }
}
