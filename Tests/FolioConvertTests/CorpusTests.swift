import Foundation
import Testing
import Folio
@testable import FolioConvert

/// Malformed files kept under Tests/Fixtures: each is refused with one clear line that names
/// the file and the defect, and the command-line tool exits 1 on it.
@Suite struct CorpusTests {
    /// Every file of a corpus folder is refused by `Checkpoint.open` with one line that starts
    /// with the path and then contains the expected phrase.
    func checkCorpus(_ folder: String, atLeast n: Int) throws {
        let corpus = try corruptCorpus(folder)
        #expect(corpus.count >= n)
        for (path, phrase) in corpus {
            let e = #expect(throws: ConvertError.self, "\(path)") { try Checkpoint.open(path) }
            let text = e?.description ?? ""
            #expect(text.hasPrefix(path) && text.dropFirst(path.count).contains(phrase), "\(path): \(text)")
            #expect(!text.contains("\n"))
        }
    }

    @Test func everyMalformedGGUFIsRefused() throws { try checkCorpus("gguf/corrupt", atLeast: 30) }

    @Test func everyMalformedSafetensorsIsRefused() throws { try checkCorpus("safetensors/corrupt", atLeast: 30) }

    @Test func everyMalformedIndexIsRefused() throws {
        let dir = foreignFixture("index")
        let data = try #require(FileManager.default.contents(atPath: dir + "/expected.json"))
        let map = try #require(try JSONSerialization.jsonObject(with: data) as? [String: String])
        #expect(map.count >= 15)
        for (name, phrase) in map.sorted(by: { $0.key < $1.key }) {
            let path = dir + "/" + name
            #expect(throws: (any Error).self, "\(name)") { try Checkpoint.open(path) }
            do { _ = try Checkpoint.open(path) } catch {
                let text = "\(error)"
                #expect(text.contains(phrase), "\(name): \(text)")
                #expect(!text.contains("\n"))
            }
        }
        // The valid index beside them opens and reads back.
        let c = try Checkpoint.open(dir + "/model.folio.index.json")
        #expect(c.tensors.map(\.name) == ["model.embed_tokens.weight", "model.norm.weight", "ids"])
    }

    @Test func npzConvertsToSafetensorsWithIdenticalValues() throws {
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions()).convert(from: foreignFixture("numpy/arrays.npz"), to: dir.file("a.safetensors"))
        try expectSameTensors(try Checkpoint.open(dir.file("a.safetensors")), reference: foreignFixture("numpy/arrays.safetensors"))
    }

    @Test func torchStateDictConvertsWithIdenticalNamesAndValues() throws {
        let dir = TempDir()
        _ = try Converter(options: ConversionOptions()).convert(from: foreignFixture("pytorch/state_dict.pt"), to: dir.file("t.folio"))
        _ = try Converter(options: ConversionOptions()).convert(from: dir.file("t.folio"), to: dir.file("t.safetensors"))
        try expectSameTensors(try Checkpoint.open(dir.file("t.safetensors")), reference: foreignFixture("pytorch/state_dict.safetensors"))
    }

    @Test func huggingFaceFolderWithPytorchModelBinConverts() throws {
        let dir = TempDir()
        try FileManagerShim.mkdir(dir.file("m"))
        writeBytes(readBytes(foreignFixture("pytorch/state_dict.pt")), to: dir.file("m/pytorch_model.bin"))
        writeBytes(Array("{\"model_type\": \"llama\"}".utf8), to: dir.file("m/config.json"))
        let c = try Checkpoint.open(dir.file("m"))
        try expectSameTensors(c, reference: foreignFixture("pytorch/state_dict.safetensors"))
        #expect(c.files.map(\.name) == ["config.json"])
    }
}
