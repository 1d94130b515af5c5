/* The per-frame hot path of a call's carrier edge, in one C call.
 *
 * Decoding (PCM16 or a G.711 code table), the polyphase FIR of
 * patter_core.audio.resample, rounding, clipping and encoding (PCM16 or a
 * G.711 table) run here because numpy spends about 0.4 us dispatching each
 * of the eight array operations a frame needs: this makes one pass over the
 * frame instead. The filter design stays in Python; this file only runs it.
 *
 * run(state, taps, up, down, src, src_lut, dst_lut) -> bytes
 *   state    bytearray of float32: input not yet consumed (the filter history);
 *            replaced by what is left after this call
 *   taps     float32[up][span], phase-major: taps[p][r] multiplies window
 *            sample r of output phase p (the transpose of resample._design)
 *   src      int16 samples in native byte order, or uint8 codes when src_lut
 *            (float32[256]) is given
 *   dst_lut  None for int16 output, else uint8[65536] indexed by the int16
 *            result's bit pattern (a G.711 encoder table)
 *
 * pcm16(src, src_lut) -> (bytes, float), for the caller VAD, is at the end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define STACK_SAMPLES 4096

static int
get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (view->len % itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of samples",
                     what, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static float
dot(const float *x, const float *h, Py_ssize_t n)
{
    float acc = 0.0f;
    for (Py_ssize_t r = 0; r < n; r++) {
        acc += x[r] * h[r];
    }
    return acc;
}

static PyObject *
fir_run(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "run() takes 7 arguments");
        return NULL;
    }
    PyObject *state = args[0];
    if (!PyByteArray_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "state must be a bytearray");
        return NULL;
    }
    Py_ssize_t up = PyLong_AsSsize_t(args[2]);
    Py_ssize_t down = PyLong_AsSsize_t(args[3]);
    if ((up == -1 || down == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (up <= 0 || down <= 0) {
        PyErr_SetString(PyExc_ValueError, "up and down must be positive");
        return NULL;
    }
    int coded_src = args[5] != Py_None;
    int coded_dst = args[6] != Py_None;

    Py_buffer taps_v, src_v, slut_v = {0}, dlut_v = {0};
    PyObject *result = NULL;
    float stack[STACK_SAMPLES];
    float *x = stack;

    if (get_buffer(args[1], &taps_v, (Py_ssize_t)sizeof(float) * up, "taps") < 0) {
        return NULL;
    }
    if (get_buffer(args[4], &src_v, coded_src ? 1 : 2, "src") < 0) {
        PyBuffer_Release(&taps_v);
        return NULL;
    }
    if (coded_src && get_buffer(args[5], &slut_v, sizeof(float), "src_lut") < 0) {
        goto done;
    }
    if (coded_src && slut_v.len != 256 * (Py_ssize_t)sizeof(float)) {
        PyErr_SetString(PyExc_ValueError, "src_lut must hold 256 float32 values");
        goto done;
    }
    if (coded_dst && get_buffer(args[6], &dlut_v, 1, "dst_lut") < 0) {
        goto done;
    }
    if (coded_dst && dlut_v.len != 65536) {
        PyErr_SetString(PyExc_ValueError, "dst_lut must hold 65536 codes");
        goto done;
    }

    Py_ssize_t span = taps_v.len / (Py_ssize_t)sizeof(float) / up;
    Py_ssize_t hist = PyByteArray_GET_SIZE(state) / (Py_ssize_t)sizeof(float);
    Py_ssize_t fresh = coded_src ? src_v.len : src_v.len / 2;
    Py_ssize_t total = hist + fresh;
    if (span <= 0) {
        PyErr_SetString(PyExc_ValueError, "taps is empty");
        goto done;
    }
    if (total > STACK_SAMPLES) {
        x = PyMem_Malloc((size_t)total * sizeof(float));
        if (x == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }

    memcpy(x, PyByteArray_AS_STRING(state), (size_t)hist * sizeof(float));
    if (coded_src) {
        const uint8_t *codes = src_v.buf;
        const float *lut = slut_v.buf;
        for (Py_ssize_t i = 0; i < fresh; i++) {
            x[hist + i] = lut[codes[i]];
        }
    } else {
        const int16_t *pcm = src_v.buf;
        for (Py_ssize_t i = 0; i < fresh; i++) {
            x[hist + i] = (float)pcm[i];
        }
    }

    Py_ssize_t cycles = total >= span ? (total - span) / down + 1 : 0;
    Py_ssize_t n_out = cycles * up;
    result = PyBytes_FromStringAndSize(NULL, n_out * (coded_dst ? 1 : 2));
    if (result == NULL) {
        goto done;
    }
    const float *taps = taps_v.buf;
    int16_t *pcm_out = (int16_t *)PyBytes_AS_STRING(result);
    uint8_t *code_out = (uint8_t *)PyBytes_AS_STRING(result);
    const uint8_t *encode = dlut_v.buf;
    Py_ssize_t k = 0;
    for (Py_ssize_t t = 0; t < cycles; t++) {
        const float *window = x + t * down;
        for (Py_ssize_t p = 0; p < up; p++, k++) {
            float v = dot(window, taps + p * span, span);
            v = v > 32767.0f ? 32767.0f : (v < -32768.0f ? -32768.0f : v);
            int16_t s = (int16_t)lrintf(v); /* round half to even, as numpy's rint */
            if (coded_dst) {
                code_out[k] = encode[(uint16_t)s];
            } else {
                pcm_out[k] = s;
            }
        }
    }

    Py_ssize_t left = total - cycles * down;
    if (PyByteArray_Resize(state, left * (Py_ssize_t)sizeof(float)) < 0) {
        Py_CLEAR(result);
        goto done;
    }
    memcpy(PyByteArray_AS_STRING(state), x + cycles * down, (size_t)left * sizeof(float));

done:
    if (x != stack) {
        PyMem_Free(x);
    }
    PyBuffer_Release(&taps_v);
    PyBuffer_Release(&src_v);
    if (slut_v.obj != NULL) {
        PyBuffer_Release(&slut_v);
    }
    if (dlut_v.obj != NULL) {
        PyBuffer_Release(&dlut_v);
    }
    return result;
}

/* pcm16(src, src_lut) -> (bytes, float)
 *
 * The caller VAD's view of one frame: its int16 samples (native byte order)
 * and their mean square, in one pass. src is uint8 codes decoded through
 * src_lut (float32[256], whole-number values), or int16 samples when src_lut
 * is None.
 */
static PyObject *
fir_pcm16(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "pcm16() takes 2 arguments");
        return NULL;
    }
    int coded = args[1] != Py_None;
    Py_buffer src_v, lut_v;
    lut_v.obj = NULL;
    if (get_buffer(args[0], &src_v, coded ? 1 : 2, "src") < 0) {
        return NULL;
    }
    if (coded) {
        if (get_buffer(args[1], &lut_v, 4, "src_lut") < 0) {
            PyBuffer_Release(&src_v);
            return NULL;
        }
        if (lut_v.len != 256 * 4) {
            PyErr_SetString(PyExc_ValueError, "src_lut must hold 256 float32 values");
            PyBuffer_Release(&src_v);
            PyBuffer_Release(&lut_v);
            return NULL;
        }
    }
    Py_ssize_t n = coded ? src_v.len : src_v.len / 2;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 2);
    if (out != NULL) {
        int16_t *pcm = (int16_t *)PyBytes_AS_STRING(out);
        double acc = 0.0;
        if (coded) {
            const uint8_t *codes = (const uint8_t *)src_v.buf;
            const float *lut = (const float *)lut_v.buf;
            for (Py_ssize_t i = 0; i < n; i++) {
                float v = lut[codes[i]];
                pcm[i] = (int16_t)v;
                acc += (double)v * (double)v;
            }
        } else {
            memcpy(pcm, src_v.buf, (size_t)(n * 2));
            for (Py_ssize_t i = 0; i < n; i++) {
                acc += (double)pcm[i] * (double)pcm[i];
            }
        }
        PyObject *pair = Py_BuildValue("(Nd)", out, n ? acc / (double)n : 0.0);
        out = pair;
    }
    PyBuffer_Release(&src_v);
    if (lut_v.obj != NULL) {
        PyBuffer_Release(&lut_v);
    }
    return out;
}

static PyMethodDef fir_methods[] = {
    {"run", (PyCFunction)(void (*)(void))fir_run, METH_FASTCALL,
     "Decode, resample, round, clip and encode one chunk; see the module comment."},
    {"pcm16", (PyCFunction)(void (*)(void))fir_pcm16, METH_FASTCALL,
     "One frame as int16 samples and their mean square; see the comment above it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fir_module = {
    PyModuleDef_HEAD_INIT, "_fir", "The carrier edge's per-frame kernel.", -1, fir_methods,
};

PyMODINIT_FUNC
PyInit__fir(void)
{
    return PyModule_Create(&fir_module);
}
