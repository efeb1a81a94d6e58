package org.crm.ffi.test

import org.crm.ffi.CrmException
import org.crm.ffi.CrmHandle
import org.crm.ffi.FfiEmailMessage
import org.crm.ffi.FfiListRequest
import org.crm.ffi.FfiOrigin
import org.crm.ffi.FfiRecord
import org.crm.ffi.FfiValue
import org.crm.ffi.Mailer
import org.crm.ffi.Session
import org.crm.ffi.filterCompare
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import java.math.BigDecimal

private fun text(s: String) = FfiValue.Text(s)
private fun ref(id: String) = FfiValue.Ref(id)
private fun status(r: FfiRecord) = (r.fields["status"] as FfiValue.Text).value

/** A Kotlin mailer: records what it is asked to send, or fails like an SMTP outage. */
private class RecordingMailer(private val fail: Throwable? = null) : Mailer {
    val sent = mutableListOf<FfiEmailMessage>()
    override fun send(message: FfiEmailMessage) {
        fail?.let { throw it }
        sent += message
    }
}

/** The people of the seed scenario, each with a session. */
private class Org(val handle: CrmHandle, tenant: String) {
    // Open a database (a file works the same: CrmHandle.open(path, "IT")) and set up the tenant.
    val admin: Session = handle.bootstrap(tenant, "admin", FfiOrigin(client = "junit"))
    val receptionist: Session
    val junior: Session
    val senior: Session
    val repNoCapability: Session
    val director: Session

    init {
        // Permissions: receptionists create and read their own leads, reps work on everything,
        // directors also approve quotes.
        val receptionistRole = admin.create("role", mapOf(
            "name" to text("receptionist"),
            "policy" to FfiValue.Json(
                """{"objects": {"lead": {"actions": ["create","read"], "read": ["own"], "write": ["own"]}}}""",
            ),
        )).id
        val everything = """{"objects": {"*": {"actions": ["create","read","update"], "read": ["all"], "write": ["all"]}}"""
        val repRole = admin.create("role", mapOf(
            "name" to text("rep"), "policy" to FfiValue.Json("$everything, \"capabilities\": []}"),
        )).id
        val directorRole = admin.create("role", mapOf(
            "name" to text("sales director"),
            "policy" to FfiValue.Json("$everything, \"capabilities\": [\"approve_quotes\"]}"),
        )).id

        // Users, with seniority for the assignment rules.
        fun user(name: String, role: String, seniority: Long?): Session {
            val fields = mutableMapOf<String, FfiValue>("username" to text(name), "role_id" to ref(role))
            seniority?.let { fields["seniority"] = FfiValue.Int(it) }
            return admin.asUser(admin.create("user", fields).id)
        }
        receptionist = user("rita", receptionistRole, null)
        junior = user("jack", repRole, 1)
        senior = user("sara", repRole, 7)
        repNoCapability = user("rob", repRole, 6)
        director = user("diana", directorRole, 9)
    }

    /** The default sales pipeline. */
    fun pipeline() = admin.create("pipeline", mapOf(
        "name" to text("sales"),
        "stages" to FfiValue.Json(
            """[{"name": "prospecting", "probability": 10},
                {"name": "proposal", "probability": 50, "forecast_category": "best_case", "required_fields": ["amount"]},
                {"name": "negotiation", "probability": 75, "forecast_category": "commit", "required_fields": ["expected_close"]},
                {"name": "won", "probability": 100, "outcome": "won", "roles": ["sales director"]},
                {"name": "lost", "probability": 0, "outcome": "lost"}]""",
        ),
        "is_default" to FfiValue.Bool(true),
    ))

    /** Discounts above 10 % need approval. */
    fun approvalRule() = admin.create("approval_rule", mapOf(
        "name" to text("discount over 10%"), "max_discount_percent" to FfiValue.Decimal("10"),
    ))
}

private fun lines(discount: String) = FfiValue.Lines(
    """[{"description":"Heat pump","quantity":"3","unit_price":"12000","discount_percent":"$discount","tax_rate":"22"}]""",
)

/**
 * The seed scenario from the issue, step by step, through the binding only: a phone lead is routed to
 * a senior rep, qualified and converted; a discounted quote needs a director's approval and then goes
 * out by e-mail through a mailer implemented in Kotlin. The other tests cover the remaining process
 * calls and their guards.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProcessTest {
    private lateinit var handle: CrmHandle
    private lateinit var org: Org
    private val admin get() = org.admin
    private val senior get() = org.senior
    private val director get() = org.director

    @BeforeAll
    fun setUp() {
        handle = CrmHandle.openInMemory("IT")
        org = Org(handle, "processes")
        org.pipeline()
        org.approvalRule()
    }

    @AfterAll
    fun tearDown() {
        handle.close()
    }

    @Test
    fun `seed scenario - phone lead to an approved quote e-mailed by a Kotlin mailer`() {
        CrmHandle.openInMemory("IT").use { seedScenario(Org(it, "seed")) }
    }

    private fun seedScenario(o: Org) {
        val (admin, receptionist, junior, senior, director) = listOf(o.admin, o.receptionist, o.junior, o.senior, o.director)
        val repNoCapability = o.repNoCapability
        // A queue of reps, and a rule sending important phone requests to its senior members.
        val queue = admin.create("queue", mapOf(
            "name" to text("reps"), "strategy" to text("round_robin"),
            "member_ids" to FfiValue.TextList(listOf(junior.userId(), senior.userId())),
        ))
        admin.create("assignment_rule", mapOf(
            "name" to text("important phone requests"), "entity" to text("lead"),
            "conditions" to FfiValue.Json("""{"channel": ["phone"], "min_value": "10000"}"""),
            "queue_id" to ref(queue.id), "min_seniority" to FfiValue.Int(5),
        ))
        // Discounts above 10 % need approval (ApprovalRule), and the default pipeline.
        val rule = o.approvalRule()
        assertEquals(0, BigDecimal((rule.fields["max_discount_percent"] as FfiValue.Decimal).value).compareTo(BigDecimal.TEN))
        assertEquals(FfiValue.Bool(true), o.pipeline().fields["is_default"])

        // The receptionist takes the call; the lead goes to the senior rep, never the junior one.
        fun phoneLead(value: String) = receptionist.create("lead", mapOf(
            "first_name" to text("Mario"), "last_name" to text("Rossi"), "company" to text("Rossi Impianti"),
            "email" to text("Mario.Rossi@Example.com"), "channel" to text("phone"),
            "estimated_value" to FfiValue.Money(value, "EUR"), "product_interest" to text("heat pumps"),
        ))
        var lead = phoneLead("25000")
        assertEquals(senior.userId(), lead.ownerId)
        assertEquals(text("important phone requests"), lead.fields["assigned_by_rule"])
        val email = (lead.fields["email"] as FfiValue.Text).value
        assertEquals("mario.rossi@example.com", email)
        repeat(3) { assertNotEquals(junior.userId(), phoneLead("12000").ownerId) }
        assertEquals(receptionist.userId(), phoneLead("500").ownerId, "no rule matches: the creator keeps it")

        // The rep calls back, qualifies and converts it.
        lead = senior.transitionLead(lead.id, lead.version, "contacted", "called back")
        assertEquals("contacted", status(lead))
        lead = senior.transitionLead(lead.id, lead.version, "qualified")
        val conv = senior.convertLead(lead.id, lead.version)
        assertEquals("converted", status(conv.lead))
        assertEquals(ref(conv.opportunity.id), conv.lead.fields["converted_opportunity_id"])
        assertEquals(text(email), conv.contact.fields["email"])
        assertEquals(text("Rossi Impianti"), conv.account.fields["name"])
        assertEquals(text("prospecting"), conv.opportunity.fields["stage"])
        val amount = conv.opportunity.fields["amount"] as FfiValue.Money
        assertEquals(0, BigDecimal(amount.amount).compareTo(BigDecimal("25000")))

        // A quote with a 20 % discount waits for approval.
        var quote = senior.create("quote", mapOf(
            "account_id" to ref(conv.account.id), "contact_id" to ref(conv.contact.id),
            "opportunity_id" to ref(conv.opportunity.id), "currency" to text("EUR"),
            "lines" to lines("20"),
        ))
        quote = senior.submitQuote(quote.id, quote.version)
        assertEquals("pending_approval", status(quote))
        val v = quote.version
        val notApproved = assertThrows<CrmException.InvalidTransition> { senior.sendQuote(quote.id, v) }
        assertEquals("approval_missing", notApproved.rule)
        val self = assertThrows<CrmException.InvalidTransition> { senior.approveQuote(quote.id, v) }
        assertEquals("same_person", self.rule)
        val noCapability = assertThrows<CrmException.InvalidTransition> { repNoCapability.approveQuote(quote.id, v) }
        assertEquals("role", noCapability.rule)
        assertEquals(0, admin.pendingEvents(0, 1000).count { it.eventType == "email.requested" })

        // The director approves; the quote goes out automatically.
        quote = director.approveQuote(quote.id, v, "ok for a new customer")
        assertEquals("sent", status(quote))
        assertEquals(ref(director.userId()), quote.fields["approved_by"])
        assertEquals(text(email), quote.fields["sent_to"])

        // A Kotlin mailer that throws leaves the e-mail pending; the next one delivers it, once.
        assertEquals(0L, admin.deliverEmails(RecordingMailer(IllegalStateException("smtp down"))))
        assertEquals(0L, admin.deliverEmails(RecordingMailer(CrmException.Storage("smtp down", null, "smtp", null, null))))
        assertEquals(1, admin.pendingEvents(0, 1000).count { it.eventType == "email.requested" })
        val mailer = RecordingMailer()
        assertEquals(1L, admin.deliverEmails(mailer))
        val message = mailer.sent.single()
        assertEquals(email, message.to)
        assertEquals("quote", message.recordKind)
        assertEquals(quote.id, message.recordId)
        assertTrue(message.subject.isNotBlank() && message.body.isNotBlank())
        assertEquals(0L, admin.deliverEmails(mailer))
        assertEquals(1, mailer.sent.size)
        assertEquals(0, admin.pendingEvents(0, 1000).count { it.eventType == "email.requested" })

        // The history shows every step, with who made it.
        val qh = senior.stageHistory("quote", quote.id)
        assertEquals(listOf("pending_approval", "approved", "sent"), qh.map { it.toState })
        assertEquals(director.userId(), qh[1].userId)
        assertEquals(listOf("contacted", "qualified", "converted"), senior.stageHistory("lead", lead.id).map { it.toState })
        assertEquals("called back", senior.stageHistory("lead", lead.id).first().comment)

        // The customer accepts; an order is created from the quote.
        val accepted = senior.acceptQuote(quote.id, quote.version, true)
        assertEquals("accepted", status(accepted.quote))
        val order = accepted.order!!
        assertEquals(ref(conv.account.id), order.fields["account_id"])
        assertTrue(order.fields["lines"] is FfiValue.Lines)
    }

    @Test
    fun `lead, opportunity and quote guards surface as InvalidTransition`() {
        val lead = senior.create("lead", mapOf("last_name" to text("Bianchi"), "company" to text("Bianchi Snc")))
        val noReason = assertThrows<CrmException.InvalidTransition> { senior.disqualifyLead(lead.id, lead.version, " ") }
        assertEquals("reason_required", noReason.rule)
        val out = senior.disqualifyLead(lead.id, lead.version, "no budget")
        assertEquals("disqualified", status(out))
        assertThrows<CrmException.InvalidTransition> { senior.convertLead(out.id, out.version) }
        // A stale version is a conflict, as for updates.
        assertThrows<CrmException.Conflict> { senior.transitionLead(lead.id, lead.version, "contacted") }

        // Opportunities move through their pipeline's guards.
        val acc = senior.create("account", mapOf("name" to text("Guard Spa")))
        var opp = senior.create("opportunity", mapOf(
            "name" to text("Guarded"), "account_id" to ref(acc.id), "amount" to FfiValue.Money("1000", "EUR"),
        ))
        opp = senior.moveOpportunity(opp.id, opp.version, "proposal", "sent the offer")
        assertEquals(text("proposal"), opp.fields["stage"])
        val role = assertThrows<CrmException.InvalidTransition> { senior.moveOpportunity(opp.id, opp.version, "won") }
        assertEquals("role", role.rule)
        val lostReason = assertThrows<CrmException.InvalidTransition> { senior.moveOpportunity(opp.id, opp.version, "lost") }
        assertEquals("reason_required", lostReason.rule)
        opp = senior.moveOpportunity(opp.id, opp.version, "lost", null, "went with a competitor")
        assertEquals(text("lost"), opp.fields["stage"])
    }

    @Test
    fun `quote rejection and expiry`() {
        val acc = senior.create("account", mapOf("name" to text("Quote Guard Srl")))
        var quote = senior.create("quote", mapOf("account_id" to ref(acc.id), "currency" to text("EUR"), "lines" to lines("15")))
        quote = senior.submitQuote(quote.id, quote.version, "first offer")
        assertEquals("pending_approval", status(quote))
        val role = assertThrows<CrmException.InvalidTransition> { org.repNoCapability.rejectQuote(quote.id, quote.version, "no") }
        assertEquals("role", role.rule)
        val noReason = assertThrows<CrmException.InvalidTransition> { director.rejectQuote(quote.id, quote.version, " ") }
        assertEquals("reason_required", noReason.rule)
        quote = director.rejectQuote(quote.id, quote.version, "too generous")
        assertEquals("rejected", status(quote))

        // Without a discount no rule triggers: approved at once (no address, so not sent); then expired.
        var plain = senior.create("quote", mapOf("account_id" to ref(acc.id), "currency" to text("EUR"), "lines" to lines("0")))
        plain = senior.submitQuote(plain.id, plain.version)
        assertEquals("approved", status(plain))
        plain = senior.expireQuote(plain.id, plain.version)
        assertEquals("expired", status(plain))
        val wrong = assertThrows<CrmException.InvalidTransition> { senior.acceptQuote(plain.id, plain.version, false) }
        assertEquals("wrong_state", wrong.rule)
    }

    @Test
    fun `cases, SLA check, followers, tasks and reminders`() {
        var case = admin.create("case", mapOf("subject" to text("Pump is noisy"), "priority" to text("high")))
        assertNotNull(case.fields["first_response_due"])
        case = admin.transitionCase(case.id, case.version, "in_progress", "on it")
        assertEquals("in_progress", status(case))
        assertTrue(case.fields["first_responded_at"] is FfiValue.Timestamp)
        case = admin.transitionCase(case.id, case.version, "resolved")
        assertTrue(case.fields["resolved_at"] is FfiValue.Timestamp)
        assertThrows<CrmException.InvalidTransition> { admin.transitionCase(case.id, case.version, "new") }
        assertTrue(admin.checkSlas().isEmpty(), "nothing is overdue yet")

        // Followers.
        val acc = senior.create("account", mapOf("name" to text("Followed Srl")))
        senior.follow("account", acc.id)
        senior.follow("account", acc.id) // harmless twice
        assertEquals(listOf(senior.userId()), senior.followers("account", acc.id))
        director.update("account", acc.id, acc.version, mapOf("city" to text("Bologna")))
        assertTrue(admin.pendingEvents(0, 10_000).any { it.eventType == "notification" && it.recordId == acc.id })
        assertTrue(senior.unfollow("account", acc.id))
        assertFalse(senior.unfollow("account", acc.id))
        assertTrue(senior.followers("account", acc.id).isEmpty())

        // Tasks due and their reminders, once.
        val now = System.currentTimeMillis() * 1000
        val task = senior.create("activity", mapOf(
            "activity_type" to text("task"), "subject" to text("Call back"), "due_at" to FfiValue.Timestamp(now - 60_000_000),
        ))
        senior.create("activity", mapOf(
            "activity_type" to text("task"), "subject" to text("Later"), "due_at" to FfiValue.Timestamp(now + 3 * 86_400_000_000),
        ))
        assertEquals(listOf(task.id), senior.dueTasks(now + 86_400_000_000).map { it.id })
        assertEquals(1L, admin.fireReminders())
        assertEquals(0L, admin.fireReminders())
        assertNotNull(senior.get("activity", task.id).fields["reminded_at"])
    }

    @Test
    fun `SLA breach and reminders on a manual clock`() {
        val start = 1_767_261_600_000_000L // 2026-01-01T10:00:00Z
        val hour = 3_600_000_000L
        CrmHandle.openInMemoryWithClock("IT", start).use { h ->
            val admin = h.bootstrap("clock", "admin")
            assertEquals(start, h.now())
            val case = admin.create("case", mapOf("subject" to text("No heat"), "priority" to text("high")))
            assertEquals(FfiValue.Timestamp(start + 4 * hour), case.fields["first_response_due"])
            assertTrue(admin.checkSlas().isEmpty())
            h.advanceClock(5 * 3600)
            assertEquals(listOf(case.id), admin.checkSlas())
            assertTrue(admin.checkSlas().isEmpty(), "marked once per case")
            assertEquals(FfiValue.Bool(true), admin.get("case", case.id).fields["sla_breached"])

            val task = admin.create("activity", mapOf(
                "activity_type" to text("task"), "subject" to text("Call back"), "due_at" to FfiValue.Timestamp(h.now() + hour),
            ))
            assertEquals(0L, admin.fireReminders())
            h.advanceClock(2 * 3600)
            assertEquals(1L, admin.fireReminders())
            assertEquals(0L, admin.fireReminders())
            assertTrue(admin.pendingEvents(0, 1000).any { it.eventType == "task.due" && it.recordId == task.id })
            h.setClock(start)
            assertEquals(start, h.now())
        }
        CrmHandle.openInMemory().use { h ->
            assertEquals("system_clock", assertThrows<CrmException.Validation> { h.advanceClock(1) }.rule)
        }
    }

    @Test
    fun `restore an earlier version as a new change`() {
        val acc = senior.create("account", mapOf("name" to text("Restore Srl"), "city" to text("Pavia")))
        val v2 = senior.update("account", acc.id, acc.version, mapOf("city" to text("Lodi"), "name" to text("Renamed Srl")))
        val stale = assertThrows<CrmException.Conflict> { senior.restoreVersion("account", acc.id, acc.version, 1) }
        assertEquals("stale_version", stale.rule)
        val v3 = senior.restoreVersion("account", acc.id, v2.version, 1)
        assertEquals(3L, v3.version)
        assertEquals(text("Pavia"), v3.fields["city"])
        assertEquals(text("Restore Srl"), v3.fields["name"])
        assertEquals(listOf("city", "name"), senior.diffVersions("account", acc.id, 2, 3).map { it.field }.sorted())
        assertTrue(senior.history("account", acc.id).entries.size >= 3)
        assertNull(senior.list("account", FfiListRequest(filterJson = filterCompare("name", "eq", text("Renamed Srl")))).next)
    }
}
