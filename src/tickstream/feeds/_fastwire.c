/* Native fast path of the broker wire decoders (tickstream.feeds._fastwire).
 *
 * One job: turn a frame of well-formed packets into canonical Tick objects without the
 * interpreter's per-field overhead. Anything that is not the happy path (another packet length,
 * an unknown segment, a negative price, an implausible timestamp, a short frame) makes the
 * function return None, and the pure-Python decoder in kite/wire.py (or angelone/wire.py)
 * decodes the frame instead, with its Reject reasons. So the Python module stays the definition
 * of the mapping; tests check that both paths give equal ticks for any frame.
 *
 * The canonical types (Tick, Depth, DepthLevel) and the constants are handed over once by
 * setup(), so this code knows field names, not classes. Kite is in _fastwire_kite.c, Angel One in
 * _fastwire_angel.c, what they share in _fastwire.h.
 */
#include "_fastwire.h"

PyObject *Tick, *Depth, *DepthLevel, *ModeFull, *ModeQuote, *Segments;
PyObject *KiteFullNames, *KiteQuoteNames;
PyObject *AngelTypes, *Indices, *AngelSnapNames;

/* -------------------------------------------------------------------------------- setup */

static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *tick, *dep, *lvl, *mfull, *mquote, *segs, *kite_names, *quote_names;
    PyObject *angel_types, *indices, *angel_names;
    if (!PyArg_ParseTuple(args, "OOOOOO!O!O!O!UO!", &tick, &dep, &lvl, &mfull, &mquote,
                          &PyTuple_Type, &segs, &PyTuple_Type, &kite_names, &PyTuple_Type,
                          &quote_names, &PyTuple_Type, &angel_types, &indices, &PyTuple_Type,
                          &angel_names))
        return NULL;
    if (PyTuple_GET_SIZE(segs) != 256 || PyTuple_GET_SIZE(kite_names) != KITE_NAMES ||
        PyTuple_GET_SIZE(quote_names) != KITE_QUOTE_NAMES ||
        PyTuple_GET_SIZE(angel_names) != ANGEL_NAMES) {
        PyErr_SetString(PyExc_ValueError,
                        "setup: 256 segments; 28 Kite full, 19 Kite quote and 31 Angel names");
        return NULL;
    }
    Py_XSETREF(Tick, Py_NewRef(tick));
    Py_XSETREF(Depth, Py_NewRef(dep));
    Py_XSETREF(DepthLevel, Py_NewRef(lvl));
    Py_XSETREF(ModeFull, Py_NewRef(mfull));
    Py_XSETREF(ModeQuote, Py_NewRef(mquote));
    Py_XSETREF(Segments, Py_NewRef(segs));
    Py_XSETREF(KiteFullNames, Py_NewRef(kite_names));
    Py_XSETREF(KiteQuoteNames, Py_NewRef(quote_names));
    Py_XSETREF(AngelTypes, Py_NewRef(angel_types));
    Py_XSETREF(Indices, Py_NewRef(indices));
    Py_XSETREF(AngelSnapNames, Py_NewRef(angel_names));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, "Hand over the canonical types and constants (once)."},
    {"kite_frame", (PyCFunction)(void (*)(void))kite_frame, METH_FASTCALL,
     "kite_frame(frame, ts_recv, resolve, source) -> list[Tick] | None"},
    {"angel_snap_quote", (PyCFunction)(void (*)(void))angel_snap_quote, METH_FASTCALL,
     "angel_snap_quote(packet, ts_recv, resolve, source) -> Tick | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastwire", "Native fast path of the broker wire decoders.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fastwire(void) { return PyModule_Create(&module); }
