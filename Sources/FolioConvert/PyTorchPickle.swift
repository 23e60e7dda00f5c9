import Folio

/// A value of Folio's restricted pickle machine. Nothing here can run code: callables are
/// the few allow-listed globals of `PickleGlobal`, and "calling" one only builds a value.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits (kept only to be refused where a number is needed).
    case bigInt
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// Tuples are immutable; `depth` is their nesting depth (through tuples only).
    case tuple([PickleValue], depth: Int)
    case list(PickleList)
    case dict(PickleDict)
    case global(PickleGlobal)
    case storage(TorchStorageRef)
    case tensor(TorchTensorRef)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case let .global(g): return "global \(g.qualifiedName)"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// A mutable list of the pickle (pickles build lists and dicts by mutation, and share them
/// through the memo, so they are reference types).
final class PickleList {
    var items: [PickleValue] = []
}

/// A dict of the pickle, in insertion order (a state dict's order is the module's order).
final class PickleDict {
    var entries: [(key: PickleValue, value: PickleValue)] = []
    var index: [String: Int] = [:]
}

/// The only globals the unpickler resolves: what `torch.save` writes for a state dict.
enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensorV2, rebuildTensorV3, rebuildParameter
    /// `torch.XStorage` (a typed storage of that dtype) or `torch.storage.UntypedStorage` (nil).
    case storageType(DType?)
    /// `torch.float32` and friends, passed to `_rebuild_tensor_v3`.
    case dtype(DType)

    static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]
    static let dtypes: [String: DType] = [
        "float32": .f32, "float": .f32, "float16": .f16, "half": .f16, "bfloat16": .bf16,
        "float64": .f64, "double": .f64, "int64": .i64, "long": .i64, "int32": .i32, "int": .i32,
        "int16": .i16, "short": .i16, "int8": .i8, "uint8": .u8, "bool": .bool,
        "uint16": .u16, "uint32": .u32, "uint64": .u64, "float8_e4m3fn": .f8e4m3, "float8_e5m2": .f8e5m2,
    ]

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): self = .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch.storage", "UntypedStorage"): self = .storageType(nil)
        case ("torch", _):
            if let d = Self.storageTypes[name] { self = .storageType(d) } else if let d = Self.dtypes[name] { self = .dtype(d) } else { return nil }
        default: return nil
        }
    }

    var qualifiedName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case let .storageType(d): return d.map { d in "torch." + (Self.storageTypes.first { $0.value == d }?.key ?? "?") } ?? "torch.storage.UntypedStorage"
        case let .dtype(d): return "torch." + (Self.dtypes.first { $0.value == d }?.key ?? "?")
        }
    }
}

/// A storage named by a persistent id `('storage', storage_type, key, location, numel)`.
struct TorchStorageRef {
    /// nil for an untyped (byte) storage.
    let dtype: DType?
    let key: String
    /// Elements of `dtype` (bytes for an untyped storage).
    let numel: Int
}

/// A tensor as `_rebuild_tensor_v2/v3` describes it; checked against its storage when resolved.
struct TorchTensorRef {
    let storage: TorchStorageRef
    let dtype: DType
    let offset: Int
    let shape: [Int]
    let stride: [Int]
}

/// Folio's own unpickler for the `data.pkl` of a `torch.save` archive. It interprets the
/// opcodes that state dicts use (protocols 2 to 5) and never imports or calls anything:
/// GLOBAL and STACK_GLOBAL resolve only the allow-list of `PickleGlobal` and refuse every
/// other name at once; REDUCE only builds OrderedDicts, tensors and parameters; BUILD is
/// ignored on dicts and tensors; every other opcode is refused by name and offset.
final class RestrictedUnpickler {
    static let maxTupleDepth = 64
    static let maxFlattenDepth = 100
    static let maxFlattenNodes = 1 << 22

    let bytes: [UInt8]
    let file: String
    let member: String
    private var pos = 0
    private var opStart = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    /// Every list and dict made, so that `tearDown` can cut their links without recursion
    /// (a crafted pickle can chain containers deeper than the call stack).
    private var containers: [AnyObject] = []

    init(bytes: [UInt8], file: String, member: String) {
        self.bytes = bytes
        self.file = file
        self.member = member
    }

    /// Empties every container iteratively so that releasing them never recurses deeply.
    func tearDown() {
        for c in containers {
            if let l = c as? PickleList { l.items = [] }
            if let d = c as? PickleDict { d.entries = []; d.index = [:] }
        }
        containers = []
        stack = []
        memo = [:]
    }

    /// True once the pickle has run and its value is being walked (errors then have no offset).
    private var walking = false

    func fail(_ reason: String) -> ConvertError {
        .badFile(file: file, reason: walking ? "\(member): \(reason)" : "\(member) at byte \(opStart): \(reason)")
    }

    static let opcodeNames: [UInt8: String] = [
        0x80: "PROTO", 0x95: "FRAME", 0x2E: "STOP", 0x28: "MARK", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP",
        0x4E: "NONE", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x4A: "BININT", 0x4B: "BININT1", 0x4D: "BININT2",
        0x8A: "LONG1", 0x8B: "LONG4", 0x47: "BINFLOAT", 0x58: "BINUNICODE", 0x8C: "SHORT_BINUNICODE",
        0x8D: "BINUNICODE8", 0x43: "SHORT_BINBYTES", 0x42: "BINBYTES", 0x8E: "BINBYTES8", 0x7D: "EMPTY_DICT",
        0x5D: "EMPTY_LIST", 0x29: "EMPTY_TUPLE", 0x74: "TUPLE", 0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3",
        0x6C: "LIST", 0x64: "DICT", 0x61: "APPEND", 0x65: "APPENDS", 0x73: "SETITEM", 0x75: "SETITEMS",
        0x71: "BINPUT", 0x72: "LONG_BINPUT", 0x94: "MEMOIZE", 0x68: "BINGET", 0x6A: "LONG_BINGET",
        0x63: "GLOBAL", 0x93: "STACK_GLOBAL", 0x52: "REDUCE", 0x62: "BUILD", 0x51: "BINPERSID",
        // Refused: they instantiate classes, call extension registries or use protocol 0 text.
        0x69: "INST", 0x6F: "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
        0x50: "PERSID", 0x49: "INT", 0x4C: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x54: "BINSTRING",
        0x55: "SHORT_BINSTRING", 0x56: "UNICODE", 0x67: "GET", 0x70: "PUT", 0x8F: "EMPTY_SET",
        0x90: "ADDITEMS", 0x91: "FROZENSET", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
    ]

    // MARK: Reading the byte stream

    private func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else {
            throw fail("truncated: needs \(n) more bytes, \(bytes.count - pos) remain")
        }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    private func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    private func length(_ n: Int) throws -> Int {
        let v = try uint(n)
        guard v <= UInt64(bytes.count - pos) else { throw fail("length \(v) runs past the end of the pickle (\(bytes.count - pos) bytes remain)") }
        return Int(v)
    }

    private func utf8(_ n: Int) throws -> String {
        let s = try take(n)
        guard let str = String(validating: s, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return str
    }

    private func line() throws -> String {
        guard let nl = bytes[pos...].prefix(256).firstIndex(of: 0x0A) else {
            throw fail(bytes.count - pos < 256 ? "truncated: the pickle ends inside a GLOBAL name" : "GLOBAL name is not terminated by a newline within 256 bytes")
        }
        let s = try utf8(nl - pos)
        pos += 1
        return s
    }

    /// Two's complement little-endian integer of `n` bytes.
    private func long(_ n: Int) throws -> PickleValue {
        let b = try take(n)
        if n == 0 { return .int(0) }
        guard n <= 8 else { return .bigInt }
        var v: UInt64 = 0
        for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
        if n < 8, b.last! & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }
        return .int(Int(bitPattern: UInt(v)))
    }

    // MARK: Stack

    private func push(_ v: PickleValue) { stack.append(v) }

    private func pop() throws -> PickleValue {
        guard let last = stack.last, stack.count > (marks.last ?? 0) else { throw fail("stack underflow") }
        stack.removeLast()
        return last
    }

    private func top() throws -> PickleValue {
        guard let last = stack.last, stack.count > (marks.last ?? 0) else { throw fail("stack underflow") }
        return last
    }

    private func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail("no MARK to pop to") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func tuple(_ items: [PickleValue]) throws -> PickleValue {
        var depth = 1
        for case let .tuple(_, d) in items { depth = Swift.max(depth, d + 1) }
        guard depth <= Self.maxTupleDepth else { throw fail("tuples nested deeper than \(Self.maxTupleDepth)") }
        return .tuple(items, depth: depth)
    }

    private func newList(_ items: [PickleValue] = []) -> PickleValue {
        let l = PickleList()
        l.items = items
        containers.append(l)
        return .list(l)
    }

    private func newDict() -> PickleDict {
        let d = PickleDict()
        containers.append(d)
        return d
    }

    /// A hashable rendering of a dict key (strings, numbers, None, bools and tuples of them).
    private func keyString(_ k: PickleValue) throws -> String {
        switch k {
        case let .string(s): return "s" + s
        case let .int(i): return "i\(i)"
        case let .bool(b): return b ? "i1" : "i0"
        case .none: return "n"
        case let .float(f): return f == f.rounded() && abs(f) < 1e18 ? "i\(Int(f))" : "f\(f.bitPattern)"
        case let .bytes(b): return "b" + b.map { String($0) }.joined(separator: ",")
        case let .tuple(items, _): return "(" + (try items.map { try keyString($0) }).joined(separator: "\u{1}") + ")"
        default: throw fail("a \(k.typeName) cannot be a dict key")
        }
    }

    private func setItem(_ d: PickleDict, _ k: PickleValue, _ v: PickleValue) throws {
        let s = try keyString(k)
        if let i = d.index[s] { d.entries[i].value = v } else {
            d.index[s] = d.entries.count
            d.entries.append((k, v))
        }
    }

    // MARK: The machine

    /// Runs the pickle to its STOP and returns the value it built.
    func load() throws -> PickleValue {
        while true {
            guard pos < bytes.count else { opStart = pos; throw fail("truncated: the pickle ends without STOP") }
            opStart = pos
            let op = bytes[pos]
            pos += 1
            switch op {
            case 0x80: // PROTO
                let v = try uint(1)
                guard (2...5).contains(v) else { throw fail("pickle protocol \(v) is not supported (expected 2 to 5)") }
            case 0x95: // FRAME: a length prefix for buffering; the opcodes inside are read as usual
                _ = try length(8)
            case 0x2E: // STOP
                let result = try pop()
                guard stack.isEmpty, marks.isEmpty else { throw fail("STOP with \(stack.count) values and \(marks.count) marks left on the stack") }
                guard pos == bytes.count else { throw fail("\(bytes.count - pos) bytes after STOP") }
                return result
            case 0x28: marks.append(stack.count) // MARK
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: push(try top()) // DUP
            case 0x4E: push(.none)
            case 0x88: push(.bool(true))
            case 0x89: push(.bool(false))
            case 0x4A: push(.int(Int(Int32(bitPattern: UInt32(try uint(4)))))) // BININT
            case 0x4B: push(.int(Int(try uint(1)))) // BININT1
            case 0x4D: push(.int(Int(try uint(2)))) // BININT2
            case 0x8A: push(try long(Int(try uint(1)))) // LONG1
            case 0x8B: // LONG4 (signed length)
                let n = Int32(bitPattern: UInt32(try uint(4)))
                guard n >= 0 else { throw fail("LONG4 with negative length \(n)") }
                push(try long(Int(n)))
            case 0x47: // BINFLOAT, big-endian
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                push(.float(Double(bitPattern: v)))
            case 0x58: push(.string(try utf8(try length(4)))) // BINUNICODE
            case 0x8C: push(.string(try utf8(try length(1)))) // SHORT_BINUNICODE
            case 0x8D: push(.string(try utf8(try length(8)))) // BINUNICODE8
            case 0x43: push(.bytes(Array(try take(try length(1))))) // SHORT_BINBYTES
            case 0x42: push(.bytes(Array(try take(try length(4))))) // BINBYTES
            case 0x8E: push(.bytes(Array(try take(try length(8))))) // BINBYTES8
            case 0x7D: push(.dict(newDict())) // EMPTY_DICT
            case 0x5D: push(newList()) // EMPTY_LIST
            case 0x29: push(.tuple([], depth: 1)) // EMPTY_TUPLE
            case 0x74: push(try tuple(try popMark())) // TUPLE
            case 0x85: // TUPLE1
                let a = try pop()
                push(try tuple([a]))
            case 0x86: // TUPLE2
                let b = try pop(), a = try pop()
                push(try tuple([a, b]))
            case 0x87: // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                push(try tuple([a, b, c]))
            case 0x6C: push(newList(try popMark())) // LIST
            case 0x64: // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
                let d = newDict()
                for i in stride(from: 0, to: items.count, by: 2) { try setItem(d, items[i], items[i + 1]) }
                push(.dict(d))
            case 0x61: // APPEND
                let v = try pop()
                guard case let .list(l) = try top() else { throw fail("APPEND to a \(try top().typeName), not a list") }
                l.items.append(v)
            case 0x65: // APPENDS
                let items = try popMark()
                guard case let .list(l) = try top() else { throw fail("APPENDS to a \(try top().typeName), not a list") }
                l.items += items
            case 0x73: // SETITEM
                let v = try pop(), k = try pop()
                guard case let .dict(d) = try top() else { throw fail("SETITEM on a \(try top().typeName), not a dict") }
                try setItem(d, k, v)
            case 0x75: // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
                guard case let .dict(d) = try top() else { throw fail("SETITEMS on a \(try top().typeName), not a dict") }
                for i in stride(from: 0, to: items.count, by: 2) { try setItem(d, items[i], items[i + 1]) }
            case 0x71: memo[Int(try uint(1))] = try top() // BINPUT
            case 0x72: memo[Int(try uint(4))] = try top() // LONG_BINPUT
            case 0x94: memo[memo.count] = try top() // MEMOIZE
            case 0x68, 0x6A: // BINGET, LONG_BINGET
                let i = Int(try uint(op == 0x68 ? 1 : 4))
                guard let v = memo[i] else { throw fail("memo entry \(i) was never stored") }
                push(v)
            case 0x63: // GLOBAL
                let module = try line(), name = try line()
                push(.global(try allow(module, name)))
            case 0x93: // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case let .string(n) = name, case let .string(m) = module else {
                    throw fail("STACK_GLOBAL needs two strings, got \(module.typeName) and \(name.typeName)")
                }
                push(.global(try allow(m, n)))
            case 0x52: // REDUCE
                let args = try pop(), callable = try pop()
                push(try call(callable, args))
            case 0x62: // BUILD: sets attributes (an OrderedDict's _metadata); Folio keeps none.
                _ = try pop()
                switch try top() {
                case .dict, .tensor: break
                case let other: throw fail("BUILD on a \(other.typeName) is not supported")
                }
            case 0x51: // BINPERSID
                push(.storage(try persistent(try pop())))
            default:
                let hex = "0x" + String(op, radix: 16, uppercase: true)
                if let name = Self.opcodeNames[op] {
                    throw fail("opcode \(name) (\(hex)) is not supported: Folio's unpickler accepts only what state dicts need")
                }
                throw fail("unknown opcode \(hex)")
            }
        }
    }

    private func allow(_ module: String, _ name: String) throws -> PickleGlobal {
        guard let g = PickleGlobal(module: module, name: name) else {
            throw fail("global '\(module).\(name)' is not allowed: Folio loads only state dicts (tensors, storages, OrderedDict) and never runs code from a file")
        }
        return g
    }

    private func call(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case let .global(g) = callable else { throw fail("REDUCE calls a \(callable.typeName), not an allowed global") }
        guard case let .tuple(a, _) = args else { throw fail("REDUCE of \(g.qualifiedName) with \(args.typeName) arguments, expected a tuple") }
        func int(_ v: PickleValue, _ what: String) throws -> Int {
            guard case let .int(i) = v, i >= 0 else { throw fail("\(g.qualifiedName): \(what) is \(describe(v)), expected a non-negative integer") }
            return i
        }
        func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
            guard case let .tuple(items, _) = v else { throw fail("\(g.qualifiedName): \(what) is a \(v.typeName), expected a tuple of integers") }
            return try items.map { try int($0, what) }
        }
        switch g {
        case .orderedDict:
            guard a.isEmpty else { throw fail("collections.OrderedDict called with \(a.count) arguments, expected none") }
            return .dict(newDict())
        case .rebuildTensorV2, .rebuildTensorV3:
            let v3 = g == .rebuildTensorV3
            guard v3 ? (7...8).contains(a.count) : (6...7).contains(a.count) else {
                throw fail("\(g.qualifiedName) called with \(a.count) arguments, expected \(v3 ? "7 or 8" : "6 or 7")")
            }
            guard case let .storage(s) = a[0] else { throw fail("\(g.qualifiedName): first argument is a \(a[0].typeName), expected a storage") }
            let dtype: DType
            if v3 {
                guard case let .global(.dtype(d)) = a[6] else { throw fail("\(g.qualifiedName): dtype argument is \(a[6].typeName), expected a torch dtype") }
                dtype = d
            } else {
                guard let d = s.dtype else { throw fail("\(g.qualifiedName) on an untyped storage needs a dtype") }
                dtype = d
            }
            let size = try ints(a[2], "size"), stride = try ints(a[3], "stride")
            guard size.count == stride.count else { throw fail("\(g.qualifiedName): size has \(size.count) dimensions, stride \(stride.count)") }
            return .tensor(TorchTensorRef(storage: s, dtype: dtype, offset: try int(a[1], "storage offset"), shape: size, stride: stride))
        case .rebuildParameter:
            guard a.count == 3, case .tensor = a[0] else { throw fail("torch._utils._rebuild_parameter expects (tensor, requires_grad, hooks)") }
            return a[0]
        case .storageType, .dtype:
            throw fail("\(g.qualifiedName) cannot be called")
        }
    }

    private func persistent(_ pid: PickleValue) throws -> TorchStorageRef {
        guard case let .tuple(t, _) = pid, t.count == 5, case .string("storage") = t[0] else {
            throw fail("persistent id \(describe(pid)) is not ('storage', type, key, location, numel)")
        }
        guard case let .global(.storageType(dtype)) = t[1] else { throw fail("persistent id names a \(t[1].typeName), expected a torch storage type") }
        guard case let .string(key) = t[2], !key.isEmpty, !key.contains("/"), key != "..", key != "." else {
            throw fail("persistent id has storage key \(describe(t[2])), expected a plain name")
        }
        guard case .string = t[3] else { throw fail("persistent id has location \(describe(t[3])), expected a string") }
        guard case let .int(numel) = t[4], numel >= 0 else { throw fail("persistent id has size \(describe(t[4])), expected a non-negative integer") }
        return TorchStorageRef(dtype: dtype, key: key, numel: numel)
    }

    func describe(_ v: PickleValue) -> String {
        switch v {
        case let .int(i): return String(i)
        case let .string(s): return "'\(s.prefix(64))'"
        case let .bool(b): return b ? "True" : "False"
        case .none: return "None"
        case let .float(f): return String(f)
        case .bigInt: return "an integer wider than 64 bits"
        default: return "a \(v.typeName)"
        }
    }

    // MARK: Tensors of the result

    /// The tensors of `root` with dotted names: dict keys and list indices joined by '.',
    /// so that `{"model": {"w": t}}` gives `model.w`; other values are skipped.
    func tensors(of root: PickleValue) throws -> [(name: String, tensor: TorchTensorRef)] {
        var out: [(name: String, tensor: TorchTensorRef)] = []
        var names = Set<String>()
        var nodes = 0
        var path: Set<ObjectIdentifier> = []
        walking = true
        defer { walking = false }
        func visit(_ v: PickleValue, _ name: String, _ depth: Int) throws {
            nodes += 1
            guard nodes <= Self.maxFlattenNodes else { throw fail("the pickle holds more than \(Self.maxFlattenNodes) values") }
            guard depth <= Self.maxFlattenDepth else { throw fail("containers nested deeper than \(Self.maxFlattenDepth) (at '\(name)')") }
            func child(_ key: String) -> String { name.isEmpty ? key : name + "." + key }
            switch v {
            case let .tensor(t):
                let n = name.isEmpty ? "tensor" : name
                guard names.insert(n).inserted else { throw fail("two tensors are named '\(n)'") }
                out.append((n, t))
            case let .dict(d):
                guard path.insert(ObjectIdentifier(d)).inserted else { throw fail("dict at '\(name)' contains itself") }
                for (k, value) in d.entries {
                    let key: String
                    switch k {
                    case let .string(s): key = s
                    case let .int(i): key = String(i)
                    default: key = describe(k)
                    }
                    try visit(value, child(key), depth + 1)
                }
                path.remove(ObjectIdentifier(d))
            case let .list(l):
                guard path.insert(ObjectIdentifier(l)).inserted else { throw fail("list at '\(name)' contains itself") }
                for (i, value) in l.items.enumerated() { try visit(value, child(String(i)), depth + 1) }
                path.remove(ObjectIdentifier(l))
            case let .tuple(items, _):
                for (i, value) in items.enumerated() { try visit(value, child(String(i)), depth + 1) }
            default:
                break
            }
        }
        try visit(root, "", 0)
        return out
    }
}
