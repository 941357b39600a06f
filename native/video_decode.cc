// Video frames for LeRobot datasets, decoded in-process with libavformat/libavcodec/libswscale (Debian's
// libav*-dev; scripts/build-native.mjs defines RDT_WITH_LIBAV when pkg-config finds them, and without them every
// op below fails with one line saying what to install).
//
// A frame is chosen by LeRobot's rule (src/lerobot/datasets/video_utils.py decode_video_frames_pyav at 7427f31):
// seek to the keyframe at or before round(ts / time_base) - 1, decode forward, take the decoded frame whose pts is
// nearest to ts (the earlier one on a tie) and refuse it beyond tolerance_s. We seek the same way and convert to
// RGB24 as PyAV's to_ndarray(format='rgb24') does (swscale, SWS_BILINEAR, the frame's colour matrix and range),
// but keep each file's demuxer and decoder open between calls (per JS thread, LRU-capped) and decode on from
// where the previous request stopped when the wanted frame is ahead in the same or the next GOP: the frames
// decoded are the same either way, since decoding is deterministic, only fewer of them.
#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>

#if RDT_WITH_LIBAV
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}
#endif

using rdt::Ctx;

namespace {

const char* kInstall =
    "this rdt-libero addon was built without libav, which LeRobot video datasets need: install it "
    "(apt-get install libavformat-dev libavcodec-dev libswscale-dev libavutil-dev pkg-config, as scripts/setup.sh does) "
    "and rebuild with `npm run build:native`";

// A destination byte range inside a typed array.
uint8_t* bytesOf(Ctx& c, size_t i, size_t off, size_t n) {
  bool typed = false;
  if (i >= c.argc || napi_is_typedarray(c.env, c.argv[i], &typed) != napi_ok || !typed) c.argFail(i, "a Uint8Array");
  napi_typedarray_type tt;
  size_t len, boff;
  void* data;
  napi_value ab;
  napi_get_typedarray_info(c.env, c.argv[i], &tt, &len, &data, &ab, &boff);
  if (tt != napi_uint8_array) c.argFail(i, "a Uint8Array");
  if (off + n > len)
    c.fail("destination holds " + std::to_string(len) + " bytes, " + std::to_string(off + n) + " are needed");
  return static_cast<uint8_t*>(data) + off;
}

#if RDT_WITH_LIBAV

// libav's own error lines (e.g. "moov atom not found") are kept per thread and added to our messages instead of
// going to stderr; its notices and warnings are dropped.
thread_local std::string lastLog;
void logLine(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_ERROR) return;
  char line[512];
  int prefix = 0;
  av_log_format_line(avcl, level, fmt, vl, line, sizeof line, &prefix);
  std::string l(line);
  while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.pop_back();
  auto at = l.find("] ");  // drop the "[mov,mp4,... @ 0x...] " context
  lastLog = at == std::string::npos ? l : l.substr(at + 2);
}

void startLogging() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(logLine); });
  lastLog.clear();
}

std::string avErr(int e) {
  char b[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(e, b, sizeof b);
  std::string s = b;
  if (!lastLog.empty()) s += ": " + lastLog;
  lastLog.clear();
  return s;
}

// One open video file: demuxer, decoder, colour converter, and the last two decoded frames (after a request they
// are candidates for the next one, whose nearest frame may be either).
struct Video {
  std::string path;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  AVPacket* pkt = nullptr;
  AVFrame* last = nullptr;  // the most recently decoded frame (holds one when `positioned`)
  AVFrame* prev = nullptr;  // the frame decoded just before it since the last seek (or empty)
  AVFrame* next = nullptr;  // scratch for the frame being received
  SwsContext* sws = nullptr;
  int swsKey[3] = {-1, -1, -1};  // pixel format, colour matrix and range the converter's tables were set for
  AVStream* st = nullptr;
  int si = -1;
  bool positioned = false;  // the decoder continues from `last` (no seek since, not drained)
  bool draining = false;    // the demuxer reached the end; the decoder was sent the flush packet
  double tb = 0;            // seconds per pts tick

  ~Video() {
    sws_freeContext(sws);
    av_frame_free(&last);
    av_frame_free(&prev);
    av_frame_free(&next);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
  }
};

// Open files of this JS thread (main or a loader worker: each has its own), most recent first. 16 files per thread
// bound the memory (a 256x256 AV1 decoder holds a few MB) while a batch's episodes mostly fit.
constexpr size_t kMaxOpen = 16;
thread_local std::list<std::unique_ptr<Video>> open_;

Video& openVideo(Ctx& c, const std::string& path) {
  for (auto it = open_.begin(); it != open_.end(); ++it)
    if ((*it)->path == path) {
      open_.splice(open_.begin(), open_, it);
      return *open_.front();
    }
  auto v = std::make_unique<Video>();
  v->path = path;
  int e = avformat_open_input(&v->fmt, path.c_str(), nullptr, nullptr);
  if (e < 0) c.fail(path + ": cannot open the video (" + avErr(e) + ")");
  // MP4 carries the codec parameters and the sample index in its header: no probing decode (find_stream_info)
  // is needed, which keeps opening a file cheap.
  for (unsigned k = 0; k < v->fmt->nb_streams; k++) {
    if (v->si < 0 && v->fmt->streams[k]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) v->si = int(k);
    else v->fmt->streams[k]->discard = AVDISCARD_ALL;
  }
  if (v->si < 0) c.fail(path + ": the file has no video stream");
  v->st = v->fmt->streams[v->si];
  v->tb = av_q2d(v->st->time_base);
  const AVCodec* codec = avcodec_find_decoder(v->st->codecpar->codec_id);
  if (!codec)
    c.fail(path + ": this libavcodec has no decoder for " + avcodec_get_name(v->st->codecpar->codec_id) +
           " (Debian's libavcodec59 decodes AV1 with libdav1d, H.264 and HEVC)");
  v->dec = avcodec_alloc_context3(codec);
  avcodec_parameters_to_context(v->dec, v->st->codecpar);
  v->dec->pkt_timebase = v->st->time_base;
  // One thread per decoder: the loader's workers are the parallelism (and a frame-threaded decoder would hold
  // frames back, decoding past the wanted one).
  v->dec->thread_count = 1;
  e = avcodec_open2(v->dec, codec, nullptr);
  if (e < 0) c.fail(path + ": cannot open the " + codec->name + " decoder (" + avErr(e) + ")");
  v->pkt = av_packet_alloc();
  v->last = av_frame_alloc();
  v->prev = av_frame_alloc();
  v->next = av_frame_alloc();
  open_.push_front(std::move(v));
  while (open_.size() > kMaxOpen) open_.pop_back();
  return *open_.front();
}

// The next decoded frame (with a pts) into v.next; false at the end of the stream.
bool decodeNext(Ctx& c, Video& v) {
  for (;;) {
    int e = avcodec_receive_frame(v.dec, v.next);
    if (e == 0) {
      if (v.next->pts == AV_NOPTS_VALUE) continue;  // as LeRobot: frames without a pts are skipped
      return true;
    }
    if (e == AVERROR_EOF) return false;
    if (e != AVERROR(EAGAIN)) c.fail(v.path + ": decoding failed (" + avErr(e) + ")");
    if (v.draining) return false;
    for (;;) {
      e = av_read_frame(v.fmt, v.pkt);
      if (e == AVERROR_EOF) {
        v.draining = true;
        avcodec_send_packet(v.dec, nullptr);  // flush: the frames the decoder still holds come out
        break;
      }
      if (e < 0) c.fail(v.path + ": reading the video failed (" + avErr(e) + ")");
      if (v.pkt->stream_index != v.si) {
        av_packet_unref(v.pkt);
        continue;
      }
      e = avcodec_send_packet(v.dec, v.pkt);
      av_packet_unref(v.pkt);
      if (e < 0 && e != AVERROR(EAGAIN)) c.fail(v.path + ": decoding failed (" + avErr(e) + ")");
      break;
    }
  }
}

// Index (in the demuxer's sample index) of the keyframe at or before pts, or of any sample when `any`.
int indexAt(Video& v, int64_t pts, bool any) {
  return av_index_search_timestamp(v.st, pts, AVSEEK_FLAG_BACKWARD | (any ? AVSEEK_FLAG_ANY : 0));
}

void seek(Ctx& c, Video& v, int64_t target) {
  int e = av_seek_frame(v.fmt, v.si, target, AVSEEK_FLAG_BACKWARD);
  if (e < 0) c.fail(v.path + ": seeking to " + std::to_string(target * v.tb) + " s failed (" + avErr(e) + ")");
  avcodec_flush_buffers(v.dec);
  av_frame_unref(v.last);
  av_frame_unref(v.prev);
  v.positioned = false;
  v.draining = false;
}

// The frame nearest to ts by LeRobot's rule and its distance (s), or nullptr when the stream has no frame from the
// seek point on.
AVFrame* nearest(Ctx& c, Video& v, double ts, double& dist) {
  // Python's round(ts / time_base) - 1 (round half to even: nearbyint in the default rounding mode).
  int64_t target = int64_t(std::nearbyint(ts / v.tb)) - 1;
  bool ahead = v.positioned && !v.draining && v.last->pts * v.tb <= ts;
  if (ahead) {
    // Decode on only within the current GOP or into the one that starts right after the last decoded frame; a
    // later GOP is reached sooner by seeking to its keyframe.
    int key = indexAt(v, target, false);
    int at = indexAt(v, v.last->pts, true);
    ahead = key >= 0 && at >= 0 && key <= at + 1;
  }
  if (!ahead) seek(c, v, target);
  // Frames come out in pts order: decode until one is at or after ts; the nearest is it or the one before.
  while (!(v.positioned && v.last->pts * v.tb >= ts)) {
    if (!decodeNext(c, v)) break;
    av_frame_unref(v.prev);
    if (v.positioned) av_frame_move_ref(v.prev, v.last);
    av_frame_move_ref(v.last, v.next);
    v.positioned = true;
  }
  if (!v.positioned) return nullptr;
  double dl = std::fabs(v.last->pts * v.tb - ts);
  if (v.prev->buf[0]) {
    double dp = std::fabs(v.prev->pts * v.tb - ts);
    if (dp <= dl) {  // a tie goes to the earlier frame, as LeRobot's argmin over frames in decoding order
      dist = dp;
      return v.prev;
    }
  }
  dist = dl;
  return v.last;
}

void toRgb(Ctx& c, Video& v, const AVFrame* f, uint8_t* dst, int height, int width) {
  if (f->width != width || f->height != height)
    c.fail(v.path + ": the video's frames are " + std::to_string(f->width) + "x" + std::to_string(f->height) +
           " (width x height), meta/info.json says " + std::to_string(width) + "x" + std::to_string(height));
  v.sws = sws_getCachedContext(v.sws, width, height, AVPixelFormat(f->format), width, height, AV_PIX_FMT_RGB24,
                               SWS_BILINEAR, nullptr, nullptr, nullptr);
  if (!v.sws)
    c.fail(v.path + ": cannot convert " + (av_get_pix_fmt_name(AVPixelFormat(f->format)) ?: "?") + " frames to RGB");
  // The frame's colour matrix and range, as swscale's frame API (which PyAV uses) reads them from the frame; RGB is
  // full range. Set when they change (it rebuilds the conversion tables).
  AVPixelFormat pf = AVPixelFormat(f->format);
  if (v.swsKey[0] != f->format || v.swsKey[1] != f->colorspace || v.swsKey[2] != f->color_range) {
    bool jpeg = pf == AV_PIX_FMT_YUVJ420P || pf == AV_PIX_FMT_YUVJ422P || pf == AV_PIX_FMT_YUVJ444P || pf == AV_PIX_FMT_YUVJ440P ||
                pf == AV_PIX_FMT_YUVJ411P;
    int full = jpeg || f->color_range == AVCOL_RANGE_JPEG;
    const int* coef = sws_getCoefficients(f->colorspace);
    int *inv, *tab, srcRange, dstRange, bri, con, sat;
    sws_getColorspaceDetails(v.sws, &inv, &srcRange, &tab, &dstRange, &bri, &con, &sat);
    sws_setColorspaceDetails(v.sws, coef, full, coef, 1, bri, con, sat);
    v.swsKey[0] = f->format;
    v.swsKey[1] = f->colorspace;
    v.swsKey[2] = f->color_range;
  }
  uint8_t* out[4] = {dst, nullptr, nullptr, nullptr};
  int stride[4] = {3 * width, 0, 0, 0};
  int h = sws_scale(v.sws, f->data, f->linesize, 0, height, out, stride);
  if (h != height) c.fail(v.path + ": colour conversion wrote " + std::to_string(h) + " of " + std::to_string(height) + " rows");
}

#endif  // RDT_WITH_LIBAV

}  // namespace

// videoBackend() -> 'libavformat 59.27.100, libavcodec ..., decoders av1=libdav1d h264=h264 hevc=hevc', or null
// when the addon was built without libav.
OP(videoBackend) {
#if RDT_WITH_LIBAV
  auto ver = [](const char* name, unsigned v) {
    return std::string(name) + " " + std::to_string(v >> 16) + "." + std::to_string((v >> 8) & 255) + "." + std::to_string(v & 255);
  };
  std::string s = ver("libavformat", avformat_version()) + ", " + ver("libavcodec", avcodec_version()) + ", " +
                  ver("libswscale", swscale_version()) + "; decoders";
  for (auto id : {AV_CODEC_ID_AV1, AV_CODEC_ID_H264, AV_CODEC_ID_HEVC}) {
    const AVCodec* d = avcodec_find_decoder(id);
    s += std::string(" ") + avcodec_get_name(id) + "=" + (d ? d->name : "none");
  }
  return c.str(s);
#else
  return c.null();
#endif
}

// videoReadFrames(path, times, toleranceS, height, width, dst, byteOffset): decodes, for each timestamp (s, in
// the file's time line), the frame LeRobot's rule picks, as RGB24 rows into dst from byteOffset on (one frame
// after the other). Returns null, or {index, nearest} for the first timestamp with no frame within toleranceS
// (nearest: the nearest frame's time, or null when the stream has none); frames before it are written.
OP(videoReadFrames) {
#if RDT_WITH_LIBAV
  std::string path = c.s(0);
  auto times = c.doubles(1);
  double tol = c.d(2);
  int height = int(c.i64(3)), width = int(c.i64(4));
  size_t frame = size_t(height) * width * 3;
  uint8_t* dst = bytesOf(c, 5, size_t(c.i64(6)), frame * times.size());
  startLogging();
  Video* v = &openVideo(c, path);
  for (size_t k = 0; k < times.size(); k++) {
    double d = 0;
    AVFrame* f;
    try {
      f = nearest(c, *v, times[k], d);
    } catch (...) {
      // a failed decoder is not reused
      for (auto it = open_.begin(); it != open_.end(); ++it)
        if (it->get() == v) {
          open_.erase(it);
          break;
        }
      throw;
    }
    if (!f || !(d <= tol)) {
      napi_value o;
      napi_create_object(c.env, &o);
      napi_set_named_property(c.env, o, "index", c.num(double(k)));
      napi_set_named_property(c.env, o, "nearest", f ? c.num(f->pts * v->tb) : c.null());
      return o;
    }
    toRgb(c, *v, f, dst + k * frame, height, width);
  }
  return c.null();
#else
  c.fail(kInstall);
#endif
}

// videoPacketTimes(path) -> Float64Array: the presentation times (s) of every packet of the first video stream,
// ascending, read from the container without decoding (what ffprobe -show_entries packet=pts lists).
OP(videoPacketTimes) {
#if RDT_WITH_LIBAV
  std::string path = c.s(0);
  AVFormatContext* fmt = nullptr;
  startLogging();
  int e = avformat_open_input(&fmt, path.c_str(), nullptr, nullptr);
  if (e < 0) c.fail(path + ": cannot open the video (" + avErr(e) + ")");
  std::unique_ptr<AVFormatContext, void (*)(AVFormatContext*)> guard(fmt, [](AVFormatContext* p) { avformat_close_input(&p); });
  int si = -1;
  for (unsigned k = 0; k < fmt->nb_streams; k++)
    if (si < 0 && fmt->streams[k]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) si = int(k);
  if (si < 0) c.fail(path + ": the file has no video stream");
  double tb = av_q2d(fmt->streams[si]->time_base);
  std::vector<double> ts;
  AVPacket* pkt = av_packet_alloc();
  while ((e = av_read_frame(fmt, pkt)) >= 0) {
    if (pkt->stream_index == si && pkt->pts != AV_NOPTS_VALUE) ts.push_back(pkt->pts * tb);
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  if (e != AVERROR_EOF) c.fail(path + ": reading the video failed (" + avErr(e) + ")");
  std::sort(ts.begin(), ts.end());
  napi_value ab, arr;
  void* data;
  napi_create_arraybuffer(c.env, ts.size() * sizeof(double), &data, &ab);
  if (!ts.empty()) std::memcpy(data, ts.data(), ts.size() * sizeof(double));
  napi_create_typedarray(c.env, napi_float64_array, ts.size(), ab, 0, &arr);
  return arr;
#else
  c.fail(kInstall);
#endif
}

// videoCloseAll(): closes the video files this JS thread holds open (a dataset's close()).
OP(videoCloseAll) {
#if RDT_WITH_LIBAV
  open_.clear();
#endif
  return c.undef();
}
