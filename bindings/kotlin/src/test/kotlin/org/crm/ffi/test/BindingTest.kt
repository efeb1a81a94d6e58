package org.crm.ffi.test

import org.crm.ffi.CrmException
import org.crm.ffi.CrmHandle
import org.crm.ffi.ExportSink
import org.crm.ffi.FfiEmailMessage
import org.crm.ffi.FfiGrantee
import org.crm.ffi.FfiListRequest
import org.crm.ffi.FfiOrigin
import org.crm.ffi.FfiRecord
import org.crm.ffi.FfiValue
import org.crm.ffi.Mailer
import org.crm.ffi.Session
import org.crm.ffi.filterAll
import org.crm.ffi.filterCompare
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.math.BigDecimal
import java.nio.file.Path
import java.util.Collections
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

private fun text(s: String) = FfiValue.Text(s)
private fun ref(id: String) = FfiValue.Ref(id)
private fun nowMicros() = System.currentTimeMillis() * 1000

/** The glue, one family at a time: construction, value round trips, every error code, callbacks. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BindingTest {
    private lateinit var handle: CrmHandle
    private lateinit var admin: Session
    private lateinit var alice: Session
    private lateinit var bob: Session
    private lateinit var repRoleId: String

    @BeforeAll
    fun setUp() {
        handle = CrmHandle.openInMemory("IT")
        admin = handle.bootstrap("acme", "admin", FfiOrigin(client = "junit", address = "127.0.0.1", location = "ci"))
        val policy = """
            {"objects": {"account": {"actions": ["read","create","update"], "read": ["team"], "write": ["own"]},
                         "contact": {"actions": ["read","create","update"], "read": ["team"], "write": ["own"]}},
             "fields": {"account.vat_number": "hidden"},
             "capabilities": []}
        """.trimIndent()
        repRoleId = admin.create("role", mapOf("name" to text("rep"), "policy" to FfiValue.Json(policy))).id
        val north = admin.create("team", mapOf("name" to text("north"))).id
        val south = admin.create("team", mapOf("name" to text("south"))).id
        val aliceId = admin.create(
            "user",
            mapOf(
                "username" to text("alice"), "role_id" to ref(repRoleId),
                "team_ids" to FfiValue.TextList(listOf(north)), "manager_id" to ref(admin.userId()),
            ),
        ).id
        val bobId = admin.create(
            "user",
            mapOf("username" to text("bob"), "role_id" to ref(repRoleId), "team_ids" to FfiValue.TextList(listOf(south))),
        ).id
        alice = handle.session("acme", aliceId, FfiOrigin(client = "erp-desktop 7.2"))
        bob = admin.asUser(bobId)
    }

    @AfterAll
    fun tearDown() {
        handle.close()
    }

    @Test
    fun `bootstrap gives an administrator session`() {
        assertEquals("acme", admin.tenantId())
        val me = admin.get("user", admin.userId())
        assertEquals(FfiValue.Text("admin"), me.fields["username"])
        // A second bootstrap of the same tenant is refused with a typed error.
        assertThrows<CrmException> { handle.bootstrap("acme", "again") }
    }

    @Test
    fun `permission denied carries action and rule`() {
        val acc = alice.create("account", mapOf("name" to text("Alice Srl")))
        val e = assertThrows<CrmException.PermissionDenied> { alice.delete("account", acc.id) }
        assertEquals("delete", e.action)
        assertEquals("account", e.entity)
        assertNotNull(e.rule)
        val p = assertThrows<CrmException.PermissionDenied> {
            alice.create("product", mapOf("sku" to text("X"), "name" to text("X"), "list_price" to FfiValue.Money("1", "EUR")))
        }
        assertEquals("create", p.action)
        assertEquals("product", p.entity)
        // A hidden field may not be written either.
        val f = assertThrows<CrmException.PermissionDenied> {
            alice.update("account", acc.id, acc.version, mapOf("vat_number" to text("IT123")))
        }
        assertEquals("vat_number", f.field)
    }

    @Test
    fun `sessions are refused to unknown and deactivated users`() {
        val nobody = "0190f0e4-0000-7000-8000-000000000000"
        val unknown = assertThrows<CrmException.PermissionDenied> { handle.session("acme", nobody) }
        assertEquals("unknown_user", unknown.rule)
        assertEquals("unknown_user", assertThrows<CrmException.PermissionDenied> { admin.asUser(nobody) }.rule)
        // Only an administrator's session may act as another user; hosts use handle.session.
        assertEquals(
            "not_an_administrator",
            assertThrows<CrmException.PermissionDenied> { bob.asUser(admin.userId()) }.rule,
        )
        // A user of one tenant is unknown in another.
        assertEquals(
            "unknown_user",
            assertThrows<CrmException.PermissionDenied> { handle.session("elsewhere", admin.userId()) }.rule,
        )

        val user = admin.create("user", mapOf("username" to text("carl"), "role_id" to ref(repRoleId)))
        val carl = handle.session("acme", user.id)
        carl.count("account")
        admin.update("user", user.id, user.version, mapOf("active" to FfiValue.Bool(false)))
        // The open session is refused on its next call, and no new one is opened.
        assertEquals("inactive_user", assertThrows<CrmException.PermissionDenied> { carl.count("account") }.rule)
        assertEquals("inactive_user", assertThrows<CrmException.PermissionDenied> { handle.session("acme", user.id) }.rule)
        assertEquals("inactive_user", assertThrows<CrmException.PermissionDenied> { admin.asUser(user.id) }.rule)
    }

    @Test
    fun `validation error names field and rule`() {
        val e = assertThrows<CrmException.Validation> {
            alice.create("contact", mapOf("last_name" to text("Rossi"), "email" to text("not-an-email")))
        }
        assertEquals("email", e.field)
        assertEquals("email_syntax", e.rule)
        assertFalse(e.detail.contains("not-an-email"), "no personal data in messages")
        val bad = assertThrows<CrmException.Validation> { alice.get("account", "not-a-uuid") }
        assertEquals("id_syntax", bad.rule)
        assertThrows<CrmException.Validation> { alice.list("no_such_kind", FfiListRequest()) }
    }

    @Test
    fun `records outside the scope are not found`() {
        val secret = admin.create("account", mapOf("name" to text("Admin Only Spa"), "vat_number" to text("IT999")))
        val e = assertThrows<CrmException.NotFound> { alice.get("account", secret.id) }
        assertEquals("account", e.entity)
        // Team scope: bob (another team) cannot see alice's account, admin sees the hidden field.
        val mine = alice.create("account", mapOf("name" to text("Team North Srl"), "vat_number" to text("IT1")).minus("vat_number"))
        assertThrows<CrmException.NotFound> { bob.get("account", mine.id) }
        assertEquals(FfiValue.Text("IT999"), admin.get("account", secret.id).fields["vat_number"])
        // Sharing makes it visible, unsharing hides it again.
        val share = alice.share("account", mine.id, FfiGrantee.User(bob.userId()), false)
        assertEquals(mine.id, bob.get("account", mine.id).id)
        alice.unshare(share.id)
        assertThrows<CrmException.NotFound> { bob.get("account", mine.id) }
        val decision = admin.explain(bob.userId(), "read", "account", mine.id)
        assertFalse(decision.allowed)
        assertTrue(admin.whoCanRead("account", mine.id).any { it.username == "alice" && it.decision.allowed })
    }

    @Test
    fun `stale version is a conflict`() {
        val acc = alice.create("account", mapOf("name" to text("Versioned Srl")))
        val v2 = alice.update("account", acc.id, acc.version, mapOf("city" to text("Milano")))
        assertEquals(acc.version + 1, v2.version)
        val e = assertThrows<CrmException.Conflict> {
            alice.update("account", acc.id, acc.version, mapOf("city" to text("Roma")))
        }
        assertEquals("stale_version", e.rule)
        // Clearing a field with Null.
        val v3 = alice.update("account", acc.id, v2.version, mapOf("city" to FfiValue.Null))
        assertNull(v3.fields["city"]?.takeIf { it != FfiValue.Null })
    }

    @Test
    fun `decimals and money round trip exactly`() {
        val acc = admin.create("account", mapOf("name" to text("Money Spa")))
        val opp = admin.create(
            "opportunity",
            mapOf(
                "name" to text("Big deal"), "account_id" to ref(acc.id),
                "amount" to FfiValue.Money("1234567.10", "EUR"), "probability" to FfiValue.Decimal("0.10"),
            ),
        )
        val back = admin.get("opportunity", opp.id)
        val amount = back.fields["amount"] as FfiValue.Money
        assertEquals("EUR", amount.currency)
        assertEquals(0, BigDecimal(amount.amount).compareTo(BigDecimal("1234567.10")))
        val p = back.fields["probability"] as FfiValue.Decimal
        assertEquals(0, BigDecimal(p.value).compareTo(BigDecimal("0.10")))
        // 0.1 + 0.2 is exact here.
        val sum = BigDecimal(p.value).add(BigDecimal("0.20"))
        assertEquals(0, sum.compareTo(BigDecimal("0.30")))
        assertThrows<CrmException.Validation> {
            admin.update("opportunity", opp.id, back.version, mapOf("probability" to FfiValue.Decimal("1e-3x")))
        }
    }

    @Test
    fun `timestamps and dates round trip`() {
        val at = 1_700_000_000_123_456L // with microseconds
        val act = admin.create(
            "activity",
            mapOf("activity_type" to text("call"), "subject" to text("Call back"), "occurred_at" to FfiValue.Timestamp(at)),
        )
        assertEquals(FfiValue.Timestamp(at), admin.get("activity", act.id).fields["occurred_at"])
        val c = alice.create("contact", mapOf("last_name" to text("Bianchi"), "birth_date" to FfiValue.Date("1980-02-29")))
        assertEquals(FfiValue.Date("1980-02-29"), c.fields["birth_date"])
        assertTrue(c.createdAt > 0 && c.createdAt <= nowMicros() + 1_000_000)
        assertEquals(c.createdAt, c.updatedAt)
        assertNull(c.deletedAt)
    }

    @Test
    fun `list filters and pages with a keyset cursor`() {
        val rows = (1..23).map { i ->
            mapOf("name" to text("Paged %02d".format(i)), "city" to text(if (i % 2 == 0) "Torino" else "Bari"))
        }
        assertEquals(23, bob.createMany("account", rows).size)
        val filter = filterAll(
            listOf(
                filterCompare("city", "eq", text("Bari")),
                filterCompare("name", "ge", text("Paged")),
            ),
        )
        val seen = mutableListOf<String>()
        var after: String? = null
        var pages = 0
        do {
            val page = bob.list("account", FfiListRequest(filterJson = filter, sort = "name", limit = 5, after = after))
            page.items.forEach { seen += (it.fields["name"] as FfiValue.Text).value }
            after = page.next
            pages++
        } while (after != null && pages < 10)
        assertEquals(12, seen.size)
        assertEquals(seen.sorted(), seen)
        assertTrue(pages >= 3)
        assertEquals(12L, bob.count("account", filter))
        // The raw JSON form works too; a malformed one is an InvalidQuery.
        val raw = """{"op":"compare","field":"city","cmp":"eq","value":{"type":"text","value":"Torino"}}"""
        assertEquals(11L, bob.count("account", raw))
        assertThrows<CrmException.InvalidQuery> { bob.count("account", "{not json") }
        assertThrows<CrmException.InvalidQuery> { bob.count("account", filterCompare("no_such_field", "eq", text("x"))) }
        // Descending.
        val desc = bob.list("account", FfiListRequest(filterJson = filter, sort = "name", descending = true, limit = 1))
        assertEquals("Paged 23", (desc.items.single().fields["name"] as FfiValue.Text).value)
    }

    @Test
    fun `phone lookup in several formats`() {
        val c = alice.create("contact", mapOf("last_name" to text("Verdi"), "phone" to text("02 1234 5678")))
        assertEquals(FfiValue.Text("+390212345678"), c.fields["phone"])
        for (written in listOf("+39 02 12345678", "0039 02 1234 5678", "02-1234-5678", "(02) 12345678")) {
            val found = alice.findByPhone("contact", written)
            assertEquals(listOf(c.id), found.map { it.id }, written)
        }
        assertTrue(alice.findByPhone("contact", "+1 212 555 0100").isEmpty())
    }

    @Test
    fun `history says who, when and from where`() {
        val before = nowMicros() - 1_000_000
        val acc = alice.create("account", mapOf("name" to text("History Srl")))
        alice.update("account", acc.id, acc.version, mapOf("city" to text("Genova")))
        val page = alice.history("account", acc.id)
        assertEquals(listOf("update", "create"), page.entries.map { it.operation })
        val upd = page.entries.first()
        assertEquals(alice.userId(), upd.userId)
        assertEquals("erp-desktop 7.2", upd.origin.client)
        assertTrue(upd.at >= before)
        val change = upd.changes.single { it.field == "city" }
        assertEquals(FfiValue.Text("Genova"), change.new)
        val v1 = alice.version("account", acc.id, 1)
        assertNotNull(v1)
        assertTrue(v1!!.fields["city"] == null || v1.fields["city"] == FfiValue.Null)
        assertEquals(listOf("city"), alice.diffVersions("account", acc.id, 1, 2).map { it.field })
        assertNull(alice.asOf("account", acc.id, before - 10_000_000))
        assertTrue(admin.userActivity(alice.userId(), before, nowMicros() + 1_000_000).isNotEmpty())
        // Trash and back.
        admin.delete("account", acc.id)
        assertNotNull(admin.get("account", acc.id).deletedAt)
        assertNull(admin.restore("account", acc.id).deletedAt)
    }

    @Test
    fun `audit chain verifies`() {
        val v = admin.verifyAudit()
        assertTrue(v.ok)
        assertTrue(v.checked > 0)
        assertNull(v.firstBadSeq)
        assertThrows<CrmException.PermissionDenied> { alice.verifyAudit() }
    }

    @Test
    fun `export streams to a Kotlin sink`() {
        bob.create("account", mapOf("name" to text("Export Srl"), "city" to text("Napoli")))
        val got = Collections.synchronizedList(mutableListOf<FfiRecord>())
        val n = admin.export(
            "account",
            object : ExportSink { override fun accept(record: FfiRecord) { got += record } },
            filterCompare("city", "eq", text("Napoli")),
            listOf("name"),
        )
        assertEquals(n, got.size.toLong())
        assertTrue(got.all { it.fields.keys == setOf("name") })
        // A sink that raises stops the export with its own error.
        val e = assertThrows<CrmException.Storage> {
            admin.export("account", object : ExportSink {
                override fun accept(record: FfiRecord) {
                    throw CrmException.Storage("disk full", null, "host_io", null, null)
                }
            })
        }
        assertEquals("host_io", e.rule)
    }
}

/** Outbox and the host-implemented mailer, and a database file shared by threads. */
class OutboxAndThreadsTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `outbox drains through a Kotlin mailer`() {
        CrmHandle.openInMemory().use { h ->
            val admin = h.bootstrap("mail", "admin")
            admin.deliverPendingEvents(object : Mailer {
                override fun send(message: FfiEmailMessage) {}
            }, "ops@example.invalid", 1000)
            val acc = admin.create("account", mapOf("name" to text("Outbox Srl")))
            admin.update("account", acc.id, acc.version, mapOf("city" to text("Pisa")))
            val pending = admin.pendingEvents(0, 100)
            assertEquals(listOf("record.created", "record.updated"), pending.map { it.eventType })
            assertTrue(pending.all { it.recordId == acc.id && it.kind == "account" })

            // A failing mailer stops the drain; nothing is lost.
            val failing = object : Mailer {
                override fun send(message: FfiEmailMessage) {
                    throw CrmException.Storage("smtp down", null, "smtp", null, null)
                }
            }
            assertThrows<CrmException.Storage> { admin.deliverPendingEvents(failing, "ops@example.invalid", 100) }
            // An unexpected exception becomes Internal, not a crash.
            val broken = object : Mailer {
                override fun send(message: FfiEmailMessage) { throw IllegalStateException("boom") }
            }
            val internal = assertThrows<CrmException.Internal> { admin.deliverPendingEvents(broken, "x", 100) }
            assertEquals("callback", internal.rule)
            assertEquals(2, admin.pendingEvents(0, 100).size)

            val sent = mutableListOf<FfiEmailMessage>()
            val mailer = object : Mailer {
                override fun send(message: FfiEmailMessage) { sent += message }
            }
            assertEquals(2L, admin.deliverPendingEvents(mailer, "sales@example.invalid", 100))
            assertEquals(2, sent.size)
            assertTrue(sent[0].subject.startsWith("[crm] record.created account ${acc.id}"))
            assertTrue(sent.all { it.to == "sales@example.invalid" && it.recordKind == "account" && it.recordId == acc.id })
            assertTrue(admin.pendingEvents(0, 100).isEmpty())
            assertEquals(0L, admin.ackEvents(listOf(pending[0].seq)))
        }
    }

    @Test
    fun `a file database survives reopening and serves many threads`() {
        val path = dir.resolve("crm.sqlite").toString()
        val adminId: String
        CrmHandle.open(path, "IT").use { h ->
            val admin = h.bootstrap("file", "admin")
            adminId = admin.userId()
            val pool = Executors.newFixedThreadPool(6)
            val errors = Collections.synchronizedList(mutableListOf<Throwable>())
            repeat(6) { t ->
                pool.submit {
                    try {
                        val s = h.session("file", adminId)
                        repeat(15) { i ->
                            val r = s.create("account", mapOf("name" to text("T$t-$i")))
                            s.get("account", r.id)
                            s.count("account")
                        }
                    } catch (e: Throwable) {
                        errors += e
                    }
                }
            }
            pool.shutdown()
            assertTrue(pool.awaitTermination(120, TimeUnit.SECONDS))
            assertEquals(emptyList<Throwable>(), errors)
            assertEquals(90L, admin.count("account"))
        }
        CrmHandle.open(path).use { h ->
            val admin = h.session("file", adminId)
            assertEquals(90L, admin.count("account"))
            assertTrue(admin.verifyAudit().ok)
        }
        // A file that is not a database is a Storage error.
        val junk = dir.resolve("junk.sqlite").toFile().apply { writeText("this is not sqlite ".repeat(200)) }
        assertThrows<CrmException.Storage> { CrmHandle.open(junk.path) }
    }
}
