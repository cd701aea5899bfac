/* kafkapy.protocol._scan: the compiled twin of record_scan.scan_records_py.
 *
 * scan_records(data, start, end, count) -> (min_ts_delta, max_ts_delta, keyless)
 * walks the records of a v2 batch body exactly as scan_records_py does: the same
 * checks in the same order, the same InvalidRecordError messages, the same results.
 * The tests run both on the same inputs, including random mutations.
 *
 * Only the common inputs take the C path: bytes, bytearray or a contiguous
 * one-dimensional memoryview of unsigned bytes, and plain ints for start, end and
 * count, passed positionally. Anything else (keywords, other buffer types, int
 * subclasses, a released memoryview, ...) is handed to scan_records_py itself, so
 * even odd inputs get the reference's answer or exception.
 *
 * Limits mirror the reference: every varint at most 5 bytes (values up to 35
 * bits, so int64 holds them), the timestamp delta at most 10 bytes. A 10-byte
 * varlong carries 70 bits and the reference keeps them all (Python ints), so
 * timestamp deltas are kept as 128-bit two's complement pairs here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject *invalid_record_error; /* kafkapy.protocol.errors.InvalidRecordError */
} scan_state;

/* A signed 128-bit integer: value = hi * 2**64 + lo. */
typedef struct {
    int64_t hi;
    uint64_t lo;
} i128;

static inline int
i128_lt(i128 a, i128 b)
{
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

static PyObject *
i128_to_long(i128 v)
{
    if (v.hi == 0 && v.lo <= (uint64_t)INT64_MAX) {
        return PyLong_FromLongLong((long long)v.lo);
    }
    if (v.hi == -1 && v.lo > (uint64_t)INT64_MAX) {
        return PyLong_FromLongLong(-(long long)(~v.lo) - 1);
    }
    /* (hi << 64) | lo, with Python's arbitrary precision */
    PyObject *hi = PyLong_FromLongLong(v.hi);
    PyObject *lo = PyLong_FromUnsignedLongLong(v.lo);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *shifted = NULL, *out = NULL;
    if (hi != NULL && lo != NULL && shift != NULL) {
        shifted = PyNumber_Lshift(hi, shift);
        if (shifted != NULL) {
            out = PyNumber_Or(shifted, lo);
        }
    }
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(shift);
    Py_XDECREF(shifted);
    return out;
}

/* A zigzag varint of at most 5 bytes at p, read below end (Kafka's readVarint).
 * Returns the next position, -1 when the bytes end first, or -2 when a 5th byte
 * still has its continuation bit. p may lie past end (after a length overran). */
static inline int64_t
read_varint(const uint8_t *d, int64_t p, int64_t end, int64_t *out)
{
    uint64_t r = 0;
    for (int k = 0; k < 5; k++) {
        if (p >= end) {
            return -1;
        }
        uint8_t b = d[p++];
        r |= (uint64_t)(b & 0x7F) << (7 * k);
        if (b < 0x80) {
            *out = (int64_t)(r >> 1) ^ -(int64_t)(r & 1);
            return p;
        }
    }
    return -2;
}

/* The same for a varlong of at most 10 bytes, kept whole (70 bits). */
static inline int64_t
read_varlong(const uint8_t *d, int64_t p, int64_t end, i128 *out)
{
    uint64_t lo = 0, hi = 0; /* hi: bits 64..69 of the raw value */
    for (int k = 0; k < 10; k++) {
        if (p >= end) {
            return -1;
        }
        uint8_t b = d[p++];
        if (k < 9) {
            lo |= (uint64_t)(b & 0x7F) << (7 * k);
        }
        else {
            lo |= (uint64_t)(b & 1) << 63;
            hi = (uint64_t)(b & 0x7F) >> 1;
        }
        if (b < 0x80) {
            /* zigzag: (raw >> 1) ^ -(raw & 1), i.e. m or ~m with m = raw >> 1 */
            uint64_t m_lo = (lo >> 1) | ((hi & 1) << 63);
            int64_t m_hi = (int64_t)(hi >> 1);
            if (lo & 1) {
                out->lo = ~m_lo;
                out->hi = ~m_hi;
            }
            else {
                out->lo = m_lo;
                out->hi = m_hi;
            }
            return p;
        }
    }
    return -1;
}

/* Inline the one-byte case, the usual one (a two-byte case inlined as well
 * measured no faster). V is set on success, otherwise the scan fails as malformed. */
#define VARINT(V, LIMIT)                                                        \
    do {                                                                        \
        if (p < (LIMIT) && d[p] < 0x80) {                                       \
            uint64_t u_ = d[p];                                                 \
            p += 1;                                                             \
            (V) = (int64_t)(u_ >> 1) ^ -(int64_t)(u_ & 1);                      \
        }                                                                       \
        else {                                                                  \
            p = read_varint(d, p, (LIMIT), &(V));                               \
            if (p < 0) {                                                        \
                goto invalid;                                                   \
            }                                                                   \
        }                                                                       \
    } while (0)

static PyObject *
scan(scan_state *st, const uint8_t *d, int64_t start, int64_t end, int64_t count)
{
    PyObject *exc = st->invalid_record_error;
    int64_t p = start;
    i128 lo = {0, UINT64_C(0x7FFFFFFF00000000)};  /* (2**31 - 1) << 32, as the reference */
    i128 hi = {-1, UINT64_C(0x8000000100000000)}; /* its negation */
    int64_t keyless = 0;

    for (int64_t i = 0; i < count; i++) {
        int64_t length, off, klen, vlen, hcount, hk, hv;
        i128 ts;
        if (p < end && d[p] < 0x80) {
            uint8_t b = d[p++];
            length = (int64_t)(b >> 1) ^ -(int64_t)(b & 1);
        }
        else {
            p = read_varint(d, p, end, &length);
            if (p == -2) {
                /* Kafka fails on this one outside its record parser */
                PyErr_SetString(exc, "Varint is too long");
                return NULL;
            }
            if (p < 0) {
                goto invalid;
            }
        }
        if (length <= 0 || length > end - p) {
            if (p >= end) {
                PyErr_SetString(exc, "Incorrect declared batch size, premature EOF reached");
                return NULL;
            }
            PyErr_Format(exc,
                         "Invalid record size: expected %lld bytes in record payload, "
                         "but the batch has only %lld remaining bytes.",
                         (long long)length, (long long)(end - p));
            return NULL;
        }
        int64_t rend = p + length;
        p += 1; /* attributes */
        if (p < rend && d[p] < 0x80) {
            uint8_t b = d[p++];
            ts.lo = (uint64_t)(b >> 1) ^ (uint64_t)-(int64_t)(b & 1);
            ts.hi = -(int64_t)(b & 1);
        }
        else {
            p = read_varlong(d, p, rend, &ts);
            if (p < 0) {
                goto invalid;
            }
        }
        VARINT(off, rend);
        if (off != i) {
            PyErr_Format(exc, "Record offset delta %lld is not %lld: offset deltas must be 0, 1, 2, ... in order",
                         (long long)off, (long long)i);
            return NULL;
        }
        VARINT(klen, rend);
        if (klen >= 0) {
            p += klen;
        }
        else if (klen == -1) {
            keyless++;
        }
        else {
            goto invalid;
        }
        VARINT(vlen, rend);
        if (vlen > 0) {
            p += vlen;
        }
        else if (vlen < -1) {
            goto invalid;
        }
        VARINT(hcount, rend);
        if (hcount < 0) {
            PyErr_Format(exc, "Found invalid number of record headers %lld", (long long)hcount);
            return NULL;
        }
        /* each header takes at least two bytes, so this ends with the record */
        for (int64_t h = 0; h < hcount; h++) {
            VARINT(hk, rend);
            if (hk < 0) {
                PyErr_Format(exc, "Invalid negative header key size %lld", (long long)hk);
                return NULL;
            }
            p += hk;
            VARINT(hv, rend);
            if (hv > 0) {
                p += hv;
            }
            else if (hv < -1) {
                goto invalid;
            }
        }
        if (p != rend) {
            PyErr_Format(exc,
                         "Invalid record size: expected to read %lld bytes in record payload, "
                         "but instead read %lld",
                         (long long)length, (long long)(length - (rend - p)));
            return NULL;
        }
        if (i128_lt(ts, lo)) {
            lo = ts;
        }
        if (i128_lt(hi, ts)) {
            hi = ts;
        }
    }
    if (p != end) {
        PyErr_SetString(exc, "Incorrect declared batch size, records still remaining in file");
        return NULL;
    }
    PyObject *lo_obj = i128_to_long(lo);
    PyObject *hi_obj = lo_obj != NULL ? i128_to_long(hi) : NULL;
    if (hi_obj == NULL) {
        Py_XDECREF(lo_obj);
        return NULL;
    }
    return Py_BuildValue("(NNL)", lo_obj, hi_obj, (long long)keyless);

invalid:
    PyErr_SetString(exc, "Found invalid record structure");
    return NULL;
}

#undef VARINT

/* Anything the C path does not take: the reference answers it. */
static PyObject *
call_reference(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *mod = PyImport_ImportModule("kafkapy.protocol.record_scan");
    if (mod == NULL) {
        return NULL;
    }
    PyObject *func = PyObject_GetAttrString(mod, "scan_records_py");
    Py_DECREF(mod);
    if (func == NULL) {
        return NULL;
    }
    PyObject *out = PyObject_Vectorcall(func, args, (size_t)nargs, kwnames);
    Py_DECREF(func);
    return out;
}

static PyObject *
scan_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 4 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        return call_reference(args, nargs, kwnames);
    }
    PyObject *data = args[0], *start_obj = args[1], *end_obj = args[2], *count_obj = args[3];
    if (!PyLong_CheckExact(start_obj) || !PyLong_CheckExact(end_obj) || !PyLong_CheckExact(count_obj)) {
        return call_reference(args, nargs, kwnames);
    }

    const uint8_t *d;
    Py_ssize_t len;
    Py_buffer view;
    int have_view = 0;
    if (PyBytes_CheckExact(data)) {
        d = (const uint8_t *)PyBytes_AS_STRING(data);
        len = PyBytes_GET_SIZE(data);
    }
    else if (PyByteArray_CheckExact(data) || PyMemoryView_Check(data)) {
        if (PyObject_GetBuffer(data, &view, PyBUF_RECORDS_RO) < 0) {
            PyErr_Clear();
            return call_reference(args, nargs, kwnames);
        }
        if (view.ndim != 1 || view.itemsize != 1 || view.format == NULL || strcmp(view.format, "B") != 0 ||
            (view.strides != NULL && view.strides[0] != 1) || view.suboffsets != NULL) {
            PyBuffer_Release(&view);
            return call_reference(args, nargs, kwnames);
        }
        have_view = 1;
        d = (const uint8_t *)view.buf;
        len = view.len;
    }
    else {
        return call_reference(args, nargs, kwnames);
    }

    PyObject *out = NULL;
    int overflow;
    long long start = PyLong_AsLongLongAndOverflow(start_obj, &overflow);
    int start_ok = overflow == 0;
    long long end = PyLong_AsLongLongAndOverflow(end_obj, &overflow);
    int end_ok = overflow == 0;
    if (!(start_ok && end_ok && 0 <= start && start <= end && end <= (long long)len)) {
        PyErr_Format(PyExc_ValueError, "scan_records: need 0 <= start <= end <= len(data), got start=%S, end=%S, len(data)=%zd",
                     start_obj, end_obj, len);
        goto done;
    }
    long long count = PyLong_AsLongLongAndOverflow(count_obj, &overflow);
    if (overflow > 0) {
        /* more records than any buffer holds: the scan fails on the bytes first */
        count = INT64_MAX;
    }
    else if (overflow < 0 || count <= 0) {
        scan_state *st = (scan_state *)PyModule_GetState(module);
        PyErr_Format(st->invalid_record_error, "Invalid reported count for record batch: %S", count_obj);
        goto done;
    }
    out = scan((scan_state *)PyModule_GetState(module), d, (int64_t)start, (int64_t)end, (int64_t)count);
done:
    if (have_view) {
        PyBuffer_Release(&view);
    }
    return out;
}

PyDoc_STRVAR(scan_records_doc,
             "scan_records(data, start, end, count) -> (min_ts_delta, max_ts_delta, keyless)\n\n"
             "Compiled kafkapy.protocol.record_scan.scan_records_py: same results, same errors.");

static PyMethodDef scan_methods[] = {
    {"scan_records", (PyCFunction)(void (*)(void))scan_records, METH_FASTCALL | METH_KEYWORDS, scan_records_doc},
    {NULL, NULL, 0, NULL},
};

static int
scan_exec(PyObject *module)
{
    scan_state *st = (scan_state *)PyModule_GetState(module);
    PyObject *errors = PyImport_ImportModule("kafkapy.protocol.errors");
    if (errors == NULL) {
        return -1;
    }
    st->invalid_record_error = PyObject_GetAttrString(errors, "InvalidRecordError");
    Py_DECREF(errors);
    return st->invalid_record_error == NULL ? -1 : 0;
}

static int
scan_traverse(PyObject *module, visitproc visit, void *arg)
{
    scan_state *st = (scan_state *)PyModule_GetState(module);
    Py_VISIT(st->invalid_record_error);
    return 0;
}

static int
scan_clear(PyObject *module)
{
    scan_state *st = (scan_state *)PyModule_GetState(module);
    Py_CLEAR(st->invalid_record_error);
    return 0;
}

static void
scan_free(void *module)
{
    scan_clear((PyObject *)module);
}

static PyModuleDef_Slot scan_slots[] = {
    {Py_mod_exec, scan_exec},
    {0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kafkapy.protocol._scan",
    .m_doc = "Compiled record scan of v2 batches; see kafkapy/protocol/record_scan.py.",
    .m_size = sizeof(scan_state),
    .m_methods = scan_methods,
    .m_slots = scan_slots,
    .m_traverse = scan_traverse,
    .m_clear = scan_clear,
    .m_free = scan_free,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModuleDef_Init(&scan_module);
}
